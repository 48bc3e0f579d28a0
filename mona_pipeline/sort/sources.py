"""Where pictures come from for a sort: a folder tree, a zip or tar archive read in place,
a text file listing paths, or a remote folder through TensorFlow's file systems.

    source = open_source("archive.tar.gz")
    for item in source.items():          # lazy: memory does not grow with the number of files
        item.item_id, item.name, item.read()

Remote URLs (`s3://`, `gs://`, `hdfs://`, `az://`, `http(s)://`...) go through
`tf.io.gfile`, with the schemes TensorFlow and tensorflow-io register. Only
folder and list sources can be moved or deleted from; archives are never changed.

Reading is bounded whatever the source says: only regular files are opened (a FIFO
or a device named like a picture is an unreadable item, never a hang), a file or
member larger than MAX_PICTURE_BYTES is refused before it is read, and one whose
first bytes are not a picture is refused after those bytes. What a source could not
list (a folder without permission, a damaged archive) is kept in its `problems`.
"""

from __future__ import annotations

import atexit
import collections
import io
import os
import posixpath
import stat
import sys
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Callable, Iterator

from PIL import Image, UnidentifiedImageError

from mona_pipeline.errors import UserError
from mona_pipeline.images import PICTURE_EXTENSIONS, sniff_format

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
LIST_SUFFIXES = (".txt", ".lst", ".list")
MAX_PICTURE_BYTES = 256 * 1024 * 1024  # a file or member larger than this is refused, never read into memory
HEAD_BYTES = 64 * 1024  # read first: content that is not a picture is refused without reading the rest


class SourceError(UserError, ValueError):
    """The source cannot be opened; the message says which and why."""


@dataclass(frozen=True)
class Item:
    item_id: str  # unique in the source, stable across runs: where to find it again (a chunk's ids)
    name: str  # relative name, for destinations and reports
    source: str  # human-readable location
    read: Callable[[], bytes]
    path: Path | None = None  # the local file, when it is one (move / trash / link need it)
    stamp: str | None = None  # what the content is, cheaply: "size:mtime_ns" of a file, size and CRC of a member

    @property
    def key(self) -> str:
        """The journal's key: the item id and its stamp, so a new picture under a used name is a new picture."""
        return f"{self.item_id}@{self.stamp}" if self.stamp else self.item_id


def file_stamp(path: Path) -> str | None:
    """size:mtime_ns of a file (not following a link), or None when it cannot be looked at."""
    try:
        status = path.lstat()
    except OSError:
        return None
    return f"{status.st_size}:{status.st_mtime_ns}"


class Skips:
    """What a source walked past without sorting, counted by reason, and folders it left out, with why.
    Nothing is skipped without a count: the summary, the report and the command line show them."""

    HIDDEN, NOT_A_PICTURE_NAME, LINK = "hidden", "not a picture name", "a link (not followed)"

    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self.notes: list[str] = []

    def clear(self) -> None:
        self.counts.clear()
        self.notes.clear()

    def add(self, reason: str) -> None:
        self.counts[reason] += 1


def is_earlier_out(folder: Path) -> bool:
    """Whether a folder is the output of a sort: a runs/ folder holding a run's journal."""
    runs = folder / "runs"
    try:
        return runs.is_dir() and not runs.is_symlink() and any(
            (run / "journal.sqlite").is_file() for run in runs.iterdir())
    except OSError:
        return False


class Unreadable(OSError):
    """One item that cannot be read; the message says why. The sort reports it and goes on."""


def looks_like_picture(head: bytes) -> bool:
    """Whether a file's first bytes carry a picture format's signature, or open as a picture in Pillow."""
    if sniff_format(head):
        return True
    try:
        with Image.open(io.BytesIO(head)):
            return True
    except UnidentifiedImageError:
        return False
    except Exception:  # a header cut short: the full decode decides
        return True


def read_bounded(stream: BinaryIO, size: int | None) -> bytes:
    """A picture's bytes from an open stream: refused when its size passes MAX_PICTURE_BYTES (before
    reading), when its first HEAD_BYTES are not a picture, or when it turns out longer than the limit.

    Raises:
        Unreadable: the reason, for the report.
    """
    if size is not None and size > MAX_PICTURE_BYTES:
        raise Unreadable(f"too large: {size} bytes > limit {MAX_PICTURE_BYTES}")
    head = stream.read(HEAD_BYTES)
    if len(head) < HEAD_BYTES:
        return head
    if not looks_like_picture(head):
        raise Unreadable("not a picture (unrecognised content)")
    rest = stream.read(MAX_PICTURE_BYTES + 1 - len(head))
    if len(head) + len(rest) > MAX_PICTURE_BYTES:
        raise Unreadable(f"too large: more than {MAX_PICTURE_BYTES} bytes")
    return head + rest


def read_regular_file(path: Path) -> bytes:
    """A local picture file's bytes; anything but a regular file (FIFO, device, socket) is refused unread.

    Raises:
        Unreadable: not a regular file, too large, or not a picture.
        OSError: the file cannot be opened or read.
    """
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)  # opening a FIFO must not block
    with os.fdopen(descriptor, "rb") as handle:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise Unreadable("not a regular file (a FIFO, device or socket named like a picture); not read")
        return read_bounded(handle, status.st_size)


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
        self.unreadable_folders: list[str] = []
        self.problems: list[str] = []
        self.skips = Skips()

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

    def ids(self) -> Iterator[str]:
        return (item.item_id for item in self.items())

    def items_for(self, item_ids: list[str]) -> Iterator[Item]:
        return (self._item(item_id) for item_id in item_ids)

    def _item(self, relative: str) -> Item:
        path = self.root / relative
        return Item(relative, relative, str(path), partial(read_regular_file, path), path, file_stamp(path))


class ListSource:
    """A text file with one path per line (relative paths are relative to the list's folder)."""

    movable = True

    def __init__(self, list_file: Path):
        self.list_file = list_file
        self.problems: list[str] = []
        self.skips = Skips()

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

    def ids(self) -> Iterator[str]:
        return (item.item_id for item in self.items())

    def items_for(self, item_ids: list[str]) -> Iterator[Item]:
        return (self._item(item_id) for item_id in item_ids)

    def _item(self, item_id: str) -> Item:
        path = Path(item_id)
        # Named relative to the list's folder; outside it, ".." parts are dropped by safe_relative.
        name = safe_relative(os.path.relpath(path, self.list_file.parent)).as_posix()
        return Item(item_id, name, item_id, partial(read_regular_file, path), path, file_stamp(path))


class ZipSource:
    """Members of a zip archive, read in place (nothing is unpacked to disk)."""

    movable = False

    def __init__(self, archive: Path):
        self.archive = archive
        self.problems: list[str] = []
        self.skips = Skips()

    def items(self) -> Iterator[Item]:
        self.skips.clear()
        with zipfile.ZipFile(self.archive) as handle:
            for index, info in enumerate(handle.infolist()):
                if info.is_dir():
                    continue
                if not is_picture_name(info.filename):
                    self.skips.add(Skips.NOT_A_PICTURE_NAME)
                    continue
                yield self._item(handle, index, info)

    def ids(self) -> Iterator[str]:
        return (item.item_id for item in self.items())

    def items_for(self, item_ids: list[str]) -> Iterator[Item]:
        with zipfile.ZipFile(self.archive) as handle:
            infos = handle.infolist()
            for item_id in item_ids:
                index = int(item_id.split(":", 1)[0])
                yield self._item(handle, index, infos[index])

    def _item(self, handle: zipfile.ZipFile, index: int, info: zipfile.ZipInfo) -> Item:
        return Item(f"{index:08d}:{info.filename}", safe_relative(info.filename).as_posix(),
                    f"{self.archive}!{info.filename}", _zip_reader(handle, info),
                    stamp=f"{info.file_size}:{info.CRC:08x}")


def _zip_reader(handle: zipfile.ZipFile, info: zipfile.ZipInfo) -> Callable[[], bytes]:
    def read() -> bytes:
        with handle.open(info) as member:  # streamed: a member of zeros is refused after its first bytes
            return read_bounded(member, info.file_size)
    return read


class TarSource:
    """Members of a tar archive (plain, gz, bz2, xz), streamed in order without unpacking."""

    movable = False

    def __init__(self, archive: Path):
        self.archive = archive
        self.problems: list[str] = []
        self.skips = Skips()

    def items(self) -> Iterator[Item]:
        self.problems.clear()
        self.skips.clear()
        index = -1
        try:
            with tarfile.open(self.archive, mode="r|*") as handle:
                for index, member in enumerate(handle):
                    handle.members = []  # streaming: do not keep every header in memory
                    if member.isdir():
                        continue
                    if not member.isfile():  # links and devices are never followed or written
                        self.skips.add(Skips.LINK if member.issym() or member.islnk() else "not a regular file")
                        continue
                    if not is_picture_name(member.name):
                        self.skips.add(Skips.NOT_A_PICTURE_NAME)
                        continue
                    yield Item(f"{index:08d}:{member.name}", safe_relative(member.name).as_posix(),
                               f"{self.archive}!{member.name}", _constant(self._read(handle, member)),
                               stamp=f"{member.size}:{int(member.mtime)}")
        except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
            # A damaged archive: what came before was sorted; say plainly where reading stopped.
            self.problems.append(f"{self.archive} is damaged after member {index + 1}: {error}")
            yield Item(f"{index + 1:08d}:<damaged>", "damaged", f"{self.archive} after member {index + 1}",
                       _constant(OSError(f"archive damaged after member {index + 1}: {error}")))

    @staticmethod
    def _read(handle: tarfile.TarFile, member: tarfile.TarInfo) -> bytes | OSError:
        """The member's bytes, read now (a streamed tar cannot go back), or why not."""
        try:
            extracted = handle.extractfile(member)
            return read_bounded(extracted, member.size) if extracted else Unreadable("member cannot be read")
        except Unreadable as error:
            return error
        except (tarfile.TarError, EOFError, zlib.error) as error:
            return Unreadable(f"member cannot be read: {error}")

    def ids(self) -> Iterator[str]:
        """The ids `items` would give, without reading members (a damaged archive: the same damaged id)."""
        index = -1
        try:
            with tarfile.open(self.archive, mode="r|*") as handle:
                for index, member in enumerate(handle):
                    handle.members = []
                    if member.isfile() and is_picture_name(member.name):
                        yield f"{index:08d}:{member.name}"
        except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
            self.problems.append(f"{self.archive} is damaged after member {index + 1}: {error}")
            yield f"{index + 1:08d}:<damaged>"

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
        self.skips = Skips()

    def items(self) -> Iterator[Item]:
        gfile = _gfile()
        if not gfile.isdir(self.url):  # a walk of what cannot be listed finds nothing, without a word
            raise SourceError(f"{self.url}: no such folder, or it cannot be listed (for s3:// check the bucket, "
                              f"S3_ENDPOINT and the AWS_* credentials)")
        self.skips.clear()
        for directory, _, files in gfile.walk(self.url):
            for name in sorted(files):
                if not is_picture_name(name):
                    self.skips.add(Skips.NOT_A_PICTURE_NAME)
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


def _gfile():
    """tf.io.gfile with tensorflow-io's file systems (s3://, az://, hdfs://, http(s)://) registered: until
    tensorflow_io is imported, TensorFlow does not know those schemes."""
    import tensorflow as tf
    import tensorflow_io  # noqa: F401  (registers its file systems with tf.io.gfile)

    return tf.io.gfile


def _gfile_reader(url: str) -> Callable[[], bytes]:
    def read() -> bytes:
        with _gfile().GFile(url, "rb") as handle:
            return handle.read()
    return read


def exit_process(code: int) -> int:
    """Return `code`; but in a process that used tensorflow-io's S3 file system, end it here with `code`.

    Python's own exit work runs first (atexit handlers: Prefect's log flush and temporary API server,
    then logging's shutdown); only the C++ static teardown that would abort with exit code 134 is skipped.
    """
    if not _aborting_file_system_used:
        return code
    atexit._run_exitfuncs()
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
