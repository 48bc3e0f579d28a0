"""Reading one picture from a source, safely: bounded in size, only regular files, never a hang.

    item = Item("a/b.jpg", "a/b.jpg", "/inbox/a/b.jpg", partial(read_regular_file, path), path, file_stamp(path))
    item.read()       # bytes, or Unreadable with the reason

Reading is bounded whatever the source says: only regular files are opened (a FIFO or a device named
like a picture is an unreadable item, never a hang), a file or member larger than MAX_PICTURE_BYTES is
refused before it is read, and one whose first bytes are not a picture is refused after those bytes.
What a source walks past without sorting is counted in its `Skips`.
"""

from __future__ import annotations

import collections
import io
import os
import posixpath
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Callable, Iterator

from PIL import Image, UnidentifiedImageError

from mona_pipeline.errors import UserError
from mona_pipeline.images import PICTURE_EXTENSIONS, sniff_format

MAX_PICTURE_BYTES = 256 * 1024 * 1024  # a file or member larger than this is refused, never read into memory
HEAD_BYTES = 64 * 1024  # read first: content that is not a picture is refused without reading the rest


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


def constant(data: bytes | OSError) -> Callable[[], bytes]:
    def read() -> bytes:
        if isinstance(data, OSError):
            raise data
        return data
    return read


class SourceError(UserError, ValueError):
    """The source cannot be opened; the message says which and why."""


class Source:
    """What every source offers: its items, lazily; their ids (how a chunk names its share); the items of some
    ids; what it could not list (`problems`) and what it walked past (`skips`)."""

    movable = False  # whether pictures can be moved or deleted from it (a local folder or list)
    streamed = False  # read only in order (a tar): sorted as one stream, never in chunks

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.skips = Skips()

    def items(self) -> Iterator[Item]:
        raise NotImplementedError

    def ids(self) -> Iterator[str]:
        return (item.item_id for item in self.items())

    def count(self) -> int | None:
        """How many items `items` gives, from a listing of its own (a folder walk, a zip's directory), or
        None where only the sort's own pass can tell (a tar stream, a remote folder)."""
        return None

    def items_for(self, item_ids: list[str]) -> Iterator[Item]:
        raise NotImplementedError


def resolve_source(spec: str | Path) -> str:
    """The one way a source names its place: a URL as given (a `file://` URL is its path); a local path with
    `~` expanded, made absolute (relative to the folder the command or flow runs in) and its links resolved."""
    text = str(spec)
    if "://" in text and not text.startswith("file://"):
        return text
    return str(Path(text.removeprefix("file://")).expanduser().resolve())
