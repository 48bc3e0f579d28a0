"""Where pictures come from for a sort: a folder tree, a zip or tar archive read in place,
a text file listing paths, or a remote folder through TensorFlow's file systems.

    source = open_source("archive.tar.gz")
    for item in source.items():          # lazy: memory does not grow with the number of files
        item.item_id, item.name, item.read()

Remote URLs (`s3://`, `gs://`, `hdfs://`, `az://`, `http(s)://`...) go through
`tf.io.gfile`, with the schemes TensorFlow and tensorflow-io register. Only
folder and list sources can be moved or deleted from; archives are never changed.
"""

from __future__ import annotations

import atexit
import logging
import os
import posixpath
import sys
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator

from mona_pipeline.images import PICTURE_EXTENSIONS

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
LIST_SUFFIXES = (".txt", ".lst", ".list")
MAX_MEMBER_BYTES = 512 * 1024 * 1024  # a member larger than this is refused, not read into memory


class SourceError(ValueError):
    """The source cannot be opened; the message says which and why."""


@dataclass(frozen=True)
class Item:
    item_id: str  # unique in the source, stable across runs
    name: str  # relative name, for destinations and reports
    source: str  # human-readable location
    read: Callable[[], bytes]
    path: Path | None = None  # the local file, when it is one (move / trash / link need it)


def is_picture_name(name: str) -> bool:
    return posixpath.splitext(name.lower())[1] in PICTURE_EXTENSIONS


def safe_relative(name: str) -> PurePosixPath:
    """A member or file name made safe to write under an output folder.

    Drive letters, leading slashes, `.` and `..` are dropped, so `../../x` and `/etc/x`
    land inside the output folder (as `x` and `etc/x`) instead of escaping it.
    """
    cleaned = name.replace("\\", "/")
    if len(cleaned) > 1 and cleaned[1] == ":":
        cleaned = cleaned[2:]
    parts = [p for p in cleaned.split("/") if p not in ("", ".", "..")]
    return PurePosixPath(*parts) if parts else PurePosixPath("unnamed")


class FolderSource:
    """Every picture file under a folder, walked lazily in sorted order; links to folders are not followed."""

    movable = True

    def __init__(self, root: Path, exclude: Path | None = None):
        self.root = root
        self.exclude = exclude.resolve() if exclude else None  # e.g. the sort's output inside the source

    def items(self) -> Iterator[Item]:
        for directory, subdirectories, files in os.walk(self.root, followlinks=False):
            subdirectories[:] = sorted(d for d in subdirectories if not d.startswith(".")
                                       and (Path(directory) / d).resolve() != self.exclude)
            for name in sorted(files):
                path = Path(directory) / name
                if name.startswith(".") or not is_picture_name(name) or path.is_symlink():
                    continue
                relative = path.relative_to(self.root).as_posix()
                yield Item(relative, relative, str(path), path.read_bytes, path)

    def ids(self) -> Iterator[str]:
        return (item.item_id for item in self.items())

    def items_for(self, item_ids: list[str]) -> Iterator[Item]:
        for item_id in item_ids:
            path = self.root / item_id
            yield Item(item_id, item_id, str(path), path.read_bytes, path)


class ListSource:
    """A text file with one path per line (relative paths are relative to the list's folder)."""

    movable = True

    def __init__(self, list_file: Path):
        self.list_file = list_file

    def items(self) -> Iterator[Item]:
        base = self.list_file.parent
        with open(self.list_file, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                entry = line.strip()
                if not entry or entry.startswith("#"):
                    continue
                path = Path(entry) if Path(entry).is_absolute() else base / entry
                yield self._item(str(path))

    def ids(self) -> Iterator[str]:
        return (item.item_id for item in self.items())

    def items_for(self, item_ids: list[str]) -> Iterator[Item]:
        return (self._item(item_id) for item_id in item_ids)

    def _item(self, item_id: str) -> Item:
        path = Path(item_id)
        # Named relative to the list's folder; outside it, ".." parts are dropped by safe_relative.
        name = safe_relative(os.path.relpath(path, self.list_file.parent)).as_posix()
        return Item(item_id, name, item_id, path.read_bytes, path)


class ZipSource:
    """Members of a zip archive, read in place (nothing is unpacked to disk)."""

    movable = False

    def __init__(self, archive: Path):
        self.archive = archive

    def items(self) -> Iterator[Item]:
        with zipfile.ZipFile(self.archive) as handle:
            for index, info in enumerate(handle.infolist()):
                if info.is_dir() or not is_picture_name(info.filename):
                    continue
                yield Item(f"{index:08d}:{info.filename}", safe_relative(info.filename).as_posix(),
                           f"{self.archive}!{info.filename}", _zip_reader(handle, info))

    def ids(self) -> Iterator[str]:
        return (item.item_id for item in self.items())

    def items_for(self, item_ids: list[str]) -> Iterator[Item]:
        with zipfile.ZipFile(self.archive) as handle:
            infos = handle.infolist()
            for item_id in item_ids:
                info = infos[int(item_id.split(":", 1)[0])]
                yield Item(item_id, safe_relative(info.filename).as_posix(), f"{self.archive}!{info.filename}",
                           _zip_reader(handle, info))


def _zip_reader(handle: zipfile.ZipFile, info: zipfile.ZipInfo) -> Callable[[], bytes]:
    def read() -> bytes:
        if info.file_size > MAX_MEMBER_BYTES:
            raise OSError(f"member too large: {info.file_size} bytes")
        return handle.read(info)
    return read


class TarSource:
    """Members of a tar archive (plain, gz, bz2, xz), streamed in order without unpacking."""

    movable = False

    def __init__(self, archive: Path):
        self.archive = archive

    def items(self) -> Iterator[Item]:
        index = -1
        try:
            with tarfile.open(self.archive, mode="r|*") as handle:
                for index, member in enumerate(handle):
                    handle.members = []  # streaming: do not keep every header in memory
                    if not member.isfile() or not is_picture_name(member.name):
                        continue  # links, devices and folders are never followed or written
                    yield Item(f"{index:08d}:{member.name}", safe_relative(member.name).as_posix(),
                               f"{self.archive}!{member.name}", _constant(self._read(handle, member)))
        except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
            # A damaged archive: what came before was sorted; say plainly where reading stopped.
            yield Item(f"{index + 1:08d}:<damaged>", "damaged", f"{self.archive} after member {index + 1}",
                       _constant(OSError(f"archive damaged after member {index + 1}: {error}")))

    @staticmethod
    def _read(handle: tarfile.TarFile, member: tarfile.TarInfo) -> bytes | OSError:
        if member.size > MAX_MEMBER_BYTES:
            return OSError(f"member too large: {member.size} bytes")
        try:
            extracted = handle.extractfile(member)
            return extracted.read() if extracted else OSError("member cannot be read")
        except (tarfile.TarError, EOFError, zlib.error) as error:
            return OSError(f"member cannot be read: {error}")

    def ids(self) -> Iterator[str]:
        with tarfile.open(self.archive, mode="r|*") as handle:
            for index, member in enumerate(handle):
                handle.members = []
                if member.isfile() and is_picture_name(member.name):
                    yield f"{index:08d}:{member.name}"

    def items_for(self, item_ids: list[str]) -> Iterator[Item]:
        """A tar can only be read in order: stream it and pick the wanted members."""
        wanted = set(item_ids)
        for item in self.items():
            if item.item_id in wanted:
                yield item


def _constant(data: bytes | OSError) -> Callable[[], bytes]:
    def read() -> bytes:
        if isinstance(data, OSError):
            raise data
        return data
    return read


# tensorflow-io 0.37.1's S3 file system aborts the process at exit, after all work is done
# ("pure virtual method called", exit code 134): the AWS SDK's metadata client is destroyed after
# its log system (tensorflow/io#2039, no release fixes it). Such a process ends through `exit_process`.
_ABORTS_AT_EXIT = ("s3://",)
_aborting_file_system_used = False


class RemoteSource:
    """A remote folder through tf.io.gfile (s3://, gs://, hdfs://, az://, http(s)://...)."""

    movable = False

    def __init__(self, url: str):
        global _aborting_file_system_used
        self.url = url.rstrip("/")
        _aborting_file_system_used |= self.url.startswith(_ABORTS_AT_EXIT)

    def items(self) -> Iterator[Item]:
        import tensorflow as tf

        for directory, _, files in tf.io.gfile.walk(self.url):
            for name in sorted(files):
                if not is_picture_name(name):
                    continue
                url = f"{directory.rstrip('/')}/{name}"
                relative = url[len(self.url):].lstrip("/")
                yield Item(relative, safe_relative(relative).as_posix(), url, _gfile_reader(url))

    def ids(self) -> Iterator[str]:
        return (item.item_id for item in self.items())

    def items_for(self, item_ids: list[str]) -> Iterator[Item]:
        for item_id in item_ids:
            url = f"{self.url}/{item_id}"
            yield Item(item_id, safe_relative(item_id).as_posix(), url, _gfile_reader(url))


def _gfile_reader(url: str) -> Callable[[], bytes]:
    def read() -> bytes:
        import tensorflow as tf

        with tf.io.gfile.GFile(url, "rb") as handle:
            return handle.read()
    return read


def exit_process(code: int) -> int:
    """Return `code`; but in a process that used tensorflow-io's S3 file system, end it here with `code`.

    Python's own exit work runs first (atexit handlers: log handlers, temporary API servers);
    only the C++ static teardown that would abort with exit code 134 is skipped.
    """
    if not _aborting_file_system_used:
        return code
    atexit._run_exitfuncs()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def open_source(spec: str | Path, exclude: Path | None = None):
    """Pick the source kind from the path: folder, archive, list file, or remote URL.

    `exclude` is a folder a folder source never walks into (the sort's own output).

    Raises:
        SourceError: the path does not exist or is of no known kind.
    """
    text = str(spec)
    if "://" in text and not text.startswith("file://"):
        return RemoteSource(text)
    path = Path(text.removeprefix("file://"))
    lower = path.name.lower()
    if path.is_dir():
        return FolderSource(path, exclude)
    if not path.exists():
        raise SourceError(f"source not found: {path}")
    if lower.endswith(".zip"):
        if not zipfile.is_zipfile(path):
            raise SourceError(f"{path} is named .zip but is not a zip archive")
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
