"""File operations of a sort, each safe to interrupt at any instant.

A copy is written to a temporary name and renamed into place (so a destination is
either complete or absent); a move is a rename, or across file systems a verified
copy followed by removing the source; "delete" is a move into the run's trash.
Nothing here ever overwrites a different picture: a name already taken by other
content gets the picture's hash appended.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
from pathlib import Path, PurePosixPath


def file_hash(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_intact(path: Path, content_hash: str) -> bool:
    """True when path is a regular file (not a link) holding exactly the picture with this hash."""
    return path.is_file() and not path.is_symlink() and file_hash(path) == content_hash


def with_hash_suffix(path: Path, content_hash: str) -> Path:
    """name.ext -> name~<hash8>.ext: the name a picture gets when its own is taken by other content."""
    return path.with_name(f"{path.stem}~{content_hash[:8]}{path.suffix}")


def choose_destination(folder: Path, name: PurePosixPath, content_hash: str, taken: set[Path] = frozenset()) -> Path:
    """folder/name, or folder/name~<hash8>.ext when that name holds other content or is `taken` by
    another picture of the same batch. Never outside folder."""
    destination = (folder / Path(*name.parts)).resolve()
    root = folder.resolve()
    if os.path.commonpath([root, destination]) != str(root):
        raise ValueError(f"destination {destination} escapes {root}")  # safe_relative makes this unreachable
    if destination in taken:
        return with_hash_suffix(destination, content_hash)
    if destination.exists() or destination.is_symlink():
        if is_intact(destination, content_hash):
            return destination  # the same picture is already there (e.g. a resumed run)
        destination = with_hash_suffix(destination, content_hash)
    return destination


def partial_path(destination: Path) -> Path:
    """Where a copy is written before it is renamed into place."""
    return destination.with_name(f".{destination.name}.partial")


def write_bytes_atomically(data: bytes, destination: Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = partial_path(destination)
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, destination)


def copy_picture(data: bytes, destination: Path, content_hash: str) -> None:
    if destination.exists() or destination.is_symlink():
        if is_intact(destination, content_hash):
            return
        raise OSError(f"{destination} already holds another file; not overwritten")
    write_bytes_atomically(data, destination)


def move_picture(source: Path, destination: Path, content_hash: str) -> None:
    """Rename source to destination; across file systems copy, verify, then remove the source.

    Raises:
        OSError: the source changed since it was read (hash differs), or the copy does not verify.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    if not source.exists() and is_intact(destination, content_hash):
        return  # already moved (a resumed run)
    if destination.exists() or destination.is_symlink():
        raise OSError(f"{destination} already exists; {source} left in place")
    if file_hash(source) != content_hash:
        raise OSError(f"{source} changed since it was scored; left in place")
    try:
        os.rename(source, destination)
        return
    except OSError as error:
        if error.errno != errno.EXDEV:
            raise
    temporary = partial_path(destination)
    shutil.copy2(source, temporary)
    if file_hash(temporary) != content_hash:
        temporary.unlink()
        raise OSError(f"copy of {source} does not verify; left in place")
    os.replace(temporary, destination)
    source.unlink()


def link_picture(source: Path, destination: Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    if destination.is_symlink() and os.readlink(destination) == str(source.resolve()):
        return
    if destination.exists() or destination.is_symlink():
        raise OSError(f"{destination} already exists; not replaced by a link")
    os.symlink(source.resolve(), destination)


def perform(operation: str, destination: Path, data: bytes | None, source: Path | None, content_hash: str) -> None:
    """Do one planned file operation: copy (from the bytes already read), move, trash (a move) or link."""
    if operation == "copy":
        copy_picture(data, destination, content_hash)
    elif operation in ("move", "trash"):
        move_picture(source, destination, content_hash)
    elif operation == "link":
        link_picture(source, destination)
    else:
        raise ValueError(f"unknown file operation {operation!r}; allowed: copy, move, trash, link")
