"""Where pictures come from for a sort: a folder tree, a text file listing paths, an archive read in place
(archives.py), or a remote folder (remote.py).

    source = open_source("archive.tar.gz")
    for item in source.items():          # lazy: memory does not grow with the number of files
        item.item_id, item.name, item.read()

Only folder and list sources can be moved or deleted from; archives and remote folders are never
changed. What a source could not list (a folder without permission, a damaged archive) is kept in its
`problems`; what it walked past without sorting, counted in its `skips`.
"""

from __future__ import annotations

import logging
import os
import tarfile
import threading
import zipfile
from functools import partial
from pathlib import Path
from typing import Callable, Iterator

from mona_pipeline.sort.archives import TarSource, ZipSource
from mona_pipeline.sort.reading import (Item, Skips, Source, SourceError, file_stamp, is_picture_name, read_regular_file,
                                       resolve_source, safe_relative)
from mona_pipeline.sort.remote import RemoteSource

logger = logging.getLogger(__name__)

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
LIST_SUFFIXES = (".txt", ".lst", ".list")


def is_earlier_out(folder: Path) -> bool:
    """Whether a folder is the output of a sort: a runs/ folder holding a run's journal."""
    runs = folder / "runs"
    try:
        return runs.is_dir() and not runs.is_symlink() and any(
            (run / "journal.sqlite").is_file() for run in runs.iterdir())
    except OSError:
        return False


class FolderSource(Source):
    """Every picture file under a folder, walked lazily in sorted order; links to folders are not followed.

    The sort's own output is never walked: OUT itself when it lies inside the folder, and OUT's keep/,
    review/ and runs/ when OUT is the folder. Sub-folders that cannot be listed are kept in
    `unreadable_folders` (and `problems`), never skipped without a word.
    """

    movable = True

    def __init__(self, root: Path, exclude: Path | None = None):
        self.root = root
        self.excluded: set[Path] = set()
        if exclude is not None:
            out = exclude.resolve()
            self.excluded = {out / "keep", out / "review", out / "runs"} | ({out} if out != root.resolve() else set())
        super().__init__()
        self.unreadable_folders: list[str] = []

    def _unreadable(self, error: OSError) -> None:
        self.unreadable_folders.append(str(error.filename))
        self.problems.append(f"folder {error.filename} could not be read: {error.strerror or error}")

    def _walked(self, directory: str, name: str) -> bool:
        """Whether the walk goes into a sub-folder: not hidden, not this sort's output, not an earlier one's."""
        folder = Path(directory) / name
        if folder.resolve() in self.excluded:
            return False  # this run's own OUT: not the user's pictures
        if name.startswith("."):
            self.skips.add(Skips.HIDDEN)
            return False
        if is_earlier_out(folder):
            self.skips.notes.append(f"skipped {folder}: the output of an earlier sort (its runs/ folder holds "
                                    f"journals); sort it on its own if you mean to")
            return False
        return True

    def items(self) -> Iterator[Item]:
        self.unreadable_folders.clear()
        self.problems.clear()
        self.skips.clear()
        for directory, subdirectories, files in os.walk(self.root, onerror=self._unreadable, followlinks=False):
            subdirectories[:] = sorted(d for d in subdirectories if self._walked(directory, d))
            for name in sorted(files):
                path = Path(directory) / name
                if name.startswith("."):
                    self.skips.add(Skips.HIDDEN)
                elif path.is_symlink():
                    self.skips.add(Skips.LINK)
                elif not is_picture_name(name):
                    self.skips.add(Skips.NOT_A_PICTURE_NAME)
                else:
                    yield self._item(path.relative_to(self.root).as_posix())


    def items_for(self, item_ids: list[str]) -> Iterator[Item]:
        return (self._item(item_id) for item_id in item_ids)

    def count(self) -> int:
        walker = FolderSource(self.root)  # its own skips and problems: the sort's are its own walk's
        walker.excluded = self.excluded
        return sum(1 for _ in walker.items())

    def _item(self, relative: str) -> Item:
        path = self.root / relative
        return Item(relative, relative, str(path), partial(read_regular_file, path), path, file_stamp(path))


class ListSource(Source):
    """A text file with one path per line (relative paths are relative to the list's folder)."""

    movable = True

    def __init__(self, list_file: Path):
        super().__init__()
        self.list_file = list_file

    def items(self) -> Iterator[Item]:
        """The listed paths, each once: a path listed twice (or as a/../a) is one picture. A listed link is
        counted and not followed (moving it would move the link, not the picture)."""
        base = self.list_file.parent
        seen: set[str] = set()  # as long as the list itself
        self.skips.clear()
        with open(self.list_file, encoding="utf-8", errors="surrogateescape") as handle:
            for line in handle:
                entry = line.strip()
                if not entry or entry.startswith("#"):
                    continue
                path = os.path.normpath(entry if os.path.isabs(entry) else base / entry)
                if path in seen:
                    continue
                seen.add(path)
                if os.path.islink(path):
                    self.skips.add(Skips.LINK)
                    continue
                yield self._item(path)


    def items_for(self, item_ids: list[str]) -> Iterator[Item]:
        return (self._item(item_id) for item_id in item_ids)

    def count(self) -> int:
        return sum(1 for _ in ListSource(self.list_file).items())

    def _item(self, item_id: str) -> Item:
        path = Path(item_id)
        # Named relative to the list's folder; outside it, ".." parts are dropped by safe_relative.
        name = safe_relative(os.path.relpath(path, self.list_file.parent)).as_posix()
        return Item(item_id, name, item_id, partial(read_regular_file, path), path, file_stamp(path))


def count_in_background(source: Source, told: Callable[[int], None]) -> None:
    """Count the source's items on a thread of their own and tell `told` the number; a count that fails
    (or a source that cannot count ahead) tells nothing: the sort's own pass reports what it meets."""
    def count() -> None:
        try:
            total = source.count()
        except Exception as error:  # noqa: BLE001 - a count is a nicety; the sort's pass says what is wrong
            logger.debug("counting %s failed: %s", getattr(source, "root", source), error)
            return
        if total is not None:
            told(total)

    threading.Thread(target=count, name="count-source", daemon=True).start()


def open_source(spec: str | Path, exclude: Path | None = None):
    """Pick the source kind from the path: folder, archive, list file, or remote URL.

    `exclude` is a folder a folder source never walks into (the sort's own output).

    Raises:
        SourceError: the path does not exist or is of no known kind.
    """
    text = resolve_source(spec)
    if "://" in text:
        return RemoteSource(text)
    path = Path(text)
    lower = path.name.lower()
    if path.is_dir():
        return FolderSource(path, exclude)
    if not path.exists():
        raise SourceError(f"source not found: {path.absolute()}")
    if lower.endswith(".zip"):
        if not zipfile.is_zipfile(path):
            raise SourceError(f"{path} is named .zip but is not a zip archive")
        try:  # its whole directory, now: a damaged one would otherwise end the sort with 0 pictures
            with zipfile.ZipFile(path) as handle:
                handle.infolist()
        except (zipfile.BadZipFile, UnicodeDecodeError, ValueError, OSError, EOFError) as error:
            raise SourceError(f"{path} is a damaged zip archive; its list of members cannot be read: {error}") \
                from None
        return ZipSource(path)
    if lower.endswith(ARCHIVE_SUFFIXES):
        try:
            with tarfile.open(path, mode="r|*"):
                pass
        except tarfile.TarError as error:
            raise SourceError(f"{path} is not a readable tar archive: {error}") from None
        return TarSource(path)
    if lower.endswith(LIST_SUFFIXES):
        return ListSource(path)
    raise SourceError(f"{path}: unknown source kind; give a folder, a {'/'.join(ARCHIVE_SUFFIXES)} archive, "
                      f"a {'/'.join(LIST_SUFFIXES)} list of paths, or a URL")
