"""File operations of a sort, each safe to interrupt at any instant.

A copy is written to a temporary name and renamed into place (so a destination is
either complete or absent); a move is a rename, or across file systems a verified
copy followed by removing the source; "delete" is a move into the run's trash.
A destination is always a name that did not exist when the run chose it: never the
source, never a file that was there before (a name taken by other content gets the
picture's hash appended; a name holding the identical picture means "already
there", and nothing is done). So whatever recovery and undo find at a destination
the journal names was made by that run. An operation that fails half way is rolled
back: its temporary file is removed, a move leaves the picture at its source only.
A destination is removed only when its source is proven to hold the same picture: a
source that vanished meanwhile leaves the copy as the picture's only place. Links are
never followed into or inside the output folder. A source that cannot be removed (a
read-only disk or folder) is copied instead of moved, and says so.
"""
from __future__ import annotations

import errno
import hashlib
import os
import shutil
from pathlib import Path, PurePosixPath
from typing import NamedTuple

from mona_pipeline.errors import UserError
from mona_pipeline.images import file_hash


def is_intact(path: Path, content_hash: str) -> bool:
    """True when path is a regular file (not a link) holding exactly the picture with this hash."""
    return path.is_file() and not path.is_symlink() and file_hash(path) == content_hash


NAME_MAX = 255  # bytes in one file name on the file systems a sort writes to (ext4, XFS, Btrfs, tmpfs, APFS)


def fit_name(stem: str, tail: str) -> str:
    """stem + tail, the stem shortened (never the tail: suffix and extension) to fit NAME_MAX bytes."""
    while stem and len(os.fsencode(stem + tail)) > NAME_MAX:
        stem = stem[:-1]
    return stem + tail


def with_hash_suffix(path: Path, content_hash: str, attempt: int = 1) -> Path:
    """name.ext -> name~<hash8>.ext (then name~<hash8>-2.ext ...): the name a picture gets when its own is taken."""
    tail = f"~{content_hash[:8]}{'' if attempt == 1 else f'-{attempt}'}{path.suffix}"
    return path.with_name(fit_name(path.stem, tail))


class Destination(NamedTuple):
    path: Path
    already_there: bool  # the identical picture is already at path: nothing to do


class UnsafeDestination(OSError):
    """A folder on the way to a destination is a link: never followed (it could lead outside OUT)."""


READ_ONLY = {errno.EROFS, errno.EACCES, errno.EPERM}  # a source that cannot be removed or renamed


class SourceNotWritable(OSError):
    """The source cannot be removed (a read-only disk or folder): for a move the picture was copied instead."""


def choose_destination(folder: Path, name: PurePosixPath, content_hash: str, taken: dict[Path, str] | None = None,
                       link_to: Path | None = None) -> Destination:
    """Where a picture goes: folder/name if that name is free, else folder/name~<hash8>.ext (and so on).

    A name holding the identical picture (for a link: a link to the same source; for anything, the
    source itself) means the picture is already there; so does a name `taken` by the identical picture
    earlier in the same batch, while names taken by other pictures of the batch are skipped. Each part
    of the name is shortened to NAME_MAX bytes; never outside folder.

    Raises:
        UnsafeDestination: a folder between `folder` and the destination is a link.
    """
    taken = taken or {}
    parts = [fit_name(*os.path.splitext(part)) for part in name.parts]
    root = folder.resolve()
    destination = root / Path(*parts)  # the name itself is not resolved: a link there is a taken name
    for parent in list(destination.parents)[:len(parts) - 1]:  # the folders the name adds under root
        if parent.is_symlink():
            raise UnsafeDestination(errno.ELOOP, f"{parent} is a link; a sort never writes through links")
    candidate, attempt = destination, 0
    while True:
        if candidate in taken:
            if taken[candidate] == content_hash and link_to is None:
                return Destination(candidate, True)  # the same picture twice in one batch: once is enough
        elif not (candidate.exists() or candidate.is_symlink()):
            return Destination(candidate, False)
        elif _holds(candidate, content_hash, link_to):
            return Destination(candidate, True)
        attempt += 1
        candidate = with_hash_suffix(destination, content_hash, attempt)


def _holds(path: Path, content_hash: str, link_to: Path | None) -> bool:
    """Whether path already is the picture: a link to it (link action) or a regular file with its content."""
    if link_to is not None:
        return path.is_symlink() and os.readlink(path) == str(link_to.resolve())
    return is_intact(path, content_hash)


def partial_path(destination: Path) -> Path:
    """Where a copy is written before it is renamed into place: .name.partial, or a short name for long names."""
    name = f".{destination.name}.partial"
    if len(os.fsencode(name)) > NAME_MAX:
        name = f".{hashlib.sha256(os.fsencode(destination.name)).hexdigest()[:16]}.partial"
    return destination.with_name(name)


def write_bytes_atomically(data: bytes, destination: Path) -> None:
    """Write to the partial name, flush to disk, rename into place; on any failure remove the partial.
    The partial is created exclusively: another process writing the same name fails instead of mixing."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    temporary = partial_path(destination)
    try:
        with open(temporary, "xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, destination)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _refuse_existing(destination: Path, source: Path | None = None) -> None:
    if destination.exists() or destination.is_symlink():
        left = f"; {source} left in place" if source else ""
        raise FileExistsError(errno.EEXIST, f"{destination} appeared after it was chosen; not overwritten{left}")


def copy_picture(data: bytes, destination: Path, content_hash: str) -> None:
    _refuse_existing(destination)
    write_bytes_atomically(data, destination)


def move_picture(source: Path, destination: Path, content_hash: str) -> None:
    """Rename source to destination; across file systems copy, verify, then remove the source.

    Raises:
        SourceNotWritable: across file systems, the verified copy is in place but the source cannot be
            removed (read-only): the picture is in both places, which the caller records as a copy.
        OSError: the destination exists, the source changed since it was read (hash differs), the copy
            does not verify, or the source cannot be renamed. Nothing is left behind.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    _refuse_existing(destination, source)
    if file_hash(source) != content_hash:
        raise OSError(f"{source} changed since it was scored; left in place")
    try:
        os.rename(source, destination)
        return
    except OSError as error:
        if error.errno != errno.EXDEV:
            raise
    temporary = partial_path(destination)
    try:
        with open(temporary, "xb") as handle, open(source, "rb") as original:
            shutil.copyfileobj(original, handle, 1 << 20)
        shutil.copystat(source, temporary)
        if file_hash(temporary) != content_hash:
            raise OSError(f"copy of {source} does not verify; left in place")
        os.replace(temporary, destination)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    try:
        source.unlink()
    except FileNotFoundError:
        return  # the source went meanwhile (not by this run): the copy here is the picture now, kept
    except OSError as error:
        if not is_intact(source, content_hash):
            return  # the source is not the picture any more: the copy here is, kept
        if error.errno in READ_ONLY:
            raise SourceNotWritable(error.errno, f"{source} cannot be removed ({error.strerror}): copied, "
                                                 f"not moved") from error
        destination.unlink(missing_ok=True)  # the source is intact and stays: keep the picture in one place
        raise


def link_picture(source: Path, destination: Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    _refuse_existing(destination)
    os.symlink(source.resolve(), destination)


def writable(folder: Path) -> bool:
    """Whether files can be created in folder (its nearest existing parent): not a read-only mount."""
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    try:
        return os.access(folder, os.W_OK) and not os.statvfs(folder).f_flag & os.ST_RDONLY
    except OSError:
        return False


def perform(operation: str, destination: Path, data: bytes | None, source: Path | None, content_hash: str) -> str:
    """Do one planned file operation: copy (from the bytes already read), move, trash (a move) or link.

    Returns:
        the operation done: the planned one, or "copy" for a move whose source cannot be removed.
    Raises:
        SourceNotWritable: a trash whose source cannot be removed (the picture left where it was).
        OSError: the operation failed; nothing is left half done.
    """
    if operation == "copy":
        copy_picture(data, destination, content_hash)
    elif operation in ("move", "trash"):
        try:
            move_picture(source, destination, content_hash)
        except SourceNotWritable:
            if operation == "move":
                return "copy"
            destination.unlink(missing_ok=True)  # a dropped picture copied into the trash helps no one
            raise
        except OSError as error:
            if error.errno not in READ_ONLY or not writable(destination.parent) or writable(source.parent):
                raise
            if operation == "trash":  # the source's folder is read-only: it cannot leave it
                raise SourceNotWritable(error.errno, f"{source} cannot be removed ({error.strerror}); left in "
                                                     f"place, not trashed") from error
            copy_picture(data, destination, content_hash)
            return "copy"
    elif operation == "link":
        link_picture(source, destination)
    else:
        raise ValueError(f"unknown file operation {operation!r}; allowed: copy, move, trash, link")
    return operation


OUT_FOLDERS = ("keep", "review", "runs")


class OutFolderIsLink(UserError):
    """One of the folders a sort writes into is a link: refused before any work."""


def refuse_links_in_out(out: Path, run_dir: Path) -> None:
    """Before any work: the folders a sort writes into are folders, not links (a link could lead outside OUT).

    Raises:
        OutFolderIsLink: naming the link.
    """
    for folder in (*(out / name for name in OUT_FOLDERS), run_dir, run_dir / "trash", run_dir / "thumbs"):
        if folder.is_symlink():
            raise OutFolderIsLink(f"{folder} is a link (to {os.readlink(folder)}); a sort never writes through links. "
                            f"Make it a folder, or give another --out")
