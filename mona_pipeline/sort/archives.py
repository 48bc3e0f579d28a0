"""Archives read in place, never unpacked and never changed: zip (random access) and tar (streamed).

    source = open_source("wallpapers.tar.gz")      # a TarSource: members in order, no member read twice

Member names like `../../x` or `/etc/x` become names inside OUT (`reading.safe_relative`); links,
devices and folders inside an archive are never followed or written.
"""

from __future__ import annotations

import tarfile
import zipfile
import zlib
from pathlib import Path
from typing import Callable, Iterator

from mona_pipeline.sort.reading import (Item, Skips, Source, Unreadable, constant, is_picture_name, read_bounded,
                                       safe_relative)

class ZipSource(Source):
    """Members of a zip archive, read in place (nothing is unpacked to disk)."""

    def __init__(self, archive: Path):
        super().__init__()
        self.archive = archive

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


    def count(self) -> int:
        return sum(1 for _ in ZipSource(self.archive).items())  # the directory alone: no member is read

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


class TarSource(Source):
    """Members of a tar archive (plain, gz, bz2, xz), streamed in order without unpacking."""

    streamed = True
    def __init__(self, archive: Path):
        super().__init__()
        self.archive = archive

    def items(self) -> Iterator[Item]:
        return self._walk()

    def ids(self) -> Iterator[str]:
        """The ids `items` would give, without reading a member (a damaged archive: the same damaged id)."""
        return (item.item_id for item in self._walk(read=False))

    def items_for(self, item_ids: list[str]) -> Iterator[Item]:
        """A tar can only be read in order: one streamed pass, reading only the wanted members."""
        wanted = set(item_ids)
        return self._walk(wanted.__contains__)

    def _walk(self, wanted: Callable[[str], bool] = lambda item_id: True, read: bool = True) -> Iterator[Item]:
        """One streamed pass over the members: an Item per wanted picture member (its bytes read as the stream
        passes it: a streamed tar cannot go back), skips counted; a damaged archive ends with a damaged item."""
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
                    item_id = f"{index:08d}:{member.name}"
                    if wanted(item_id):
                        data = self._read(handle, member) if read else Unreadable("not read: a listing")
                        yield Item(item_id, safe_relative(member.name).as_posix(), f"{self.archive}!{member.name}",
                                   constant(data), stamp=f"{member.size}:{int(member.mtime)}")
        except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
            # A damaged archive: what came before was sorted; say plainly where reading stopped.
            self.problems.append(f"{self.archive} is damaged after member {index + 1}: {error}")
            item_id = f"{index + 1:08d}:<damaged>"
            if wanted(item_id):
                yield Item(item_id, "damaged", f"{self.archive} after member {index + 1}",
                           constant(OSError(f"archive damaged after member {index + 1}: {error}")))

    @staticmethod
    def _read(handle: tarfile.TarFile, member: tarfile.TarInfo) -> bytes | OSError:
        """The member's bytes, read now, or why not."""
        try:
            extracted = handle.extractfile(member)
            return read_bounded(extracted, member.size) if extracted else Unreadable("member cannot be read")
        except Unreadable as error:
            return error
        except (tarfile.TarError, EOFError, zlib.error) as error:
            return Unreadable(f"member cannot be read: {error}")
