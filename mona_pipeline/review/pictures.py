"""Where a reviewed picture's bytes are: its copy in OUT, its file in the source, or (archives, remote folders)
a copy read once into the run folder.

    store = PictureStore(run_dir, journal)
    data = store.read(row)               # bytes, checked against the hash the sort recorded
    store.thumbnail(row)                 # a JPEG of at most THUMB_SIDE pixels, cached under the run

Every read is checked against the content hash the journal holds: a file changed since the sort is refused
with a message, never shown as the picture that was scored. Pictures that are neither in OUT nor in a local
file (members of a tar, zip or remote folder) are read in one pass over the source (`prefetch`), which for a
tar is the only way to reach a member, and kept under OUT/runs/<run>/review/pictures/ until the run is undone.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

from PIL import Image

from mona_pipeline.images import content_hash
from mona_pipeline.sort.journal import Journal
from mona_pipeline.sort.reading import read_regular_file
from mona_pipeline.sort.recovery import Relocation

THUMB_SIDE = 320
REVIEW_FOLDER = "review"  # OUT/runs/<run>/review/: thumbnails and pictures read from archives


class PictureGone(OSError):
    """A picture is nowhere the run knows of, or what is there is not the picture that was scored."""


STAMP = re.compile(r"[0-9]+:[0-9a-fA-F]+")  # reading.Item.stamp: size and time, or size and checksum


def item_of(item_key: str) -> str:
    """The source's item id of a journal item key (`<item id>@<stamp>`, or the item id where it had no stamp)."""
    head, at, tail = item_key.rpartition("@")
    return head if at and STAMP.fullmatch(tail) else item_key


class PictureStore:
    def __init__(self, run_dir: Path, journal: Journal):
        self.run_dir, self.journal = run_dir, journal
        self.relocate = Relocation(journal, run_dir)
        self.folder = run_dir / REVIEW_FOLDER

    def _cached(self, content: str) -> Path:
        return self.folder / "pictures" / content

    def read(self, item_id: str) -> bytes:
        """The picture of a journal row.

        Raises:
            PictureGone: not in OUT, not at its source, not read from the archive yet; or changed since the sort.
        """
        entry = self.journal.get(item_id)
        if entry is None:
            raise PictureGone(f"the run has no picture {item_id!r}")
        places = []
        if entry.destination and entry.action in ("copy", "move", "trash", "link") and entry.status == "done":
            places.append(self.relocate(Path(entry.destination)))
        places.append(Path(entry.source))
        if entry.content_hash:
            places.append(self._cached(entry.content_hash))
        for place in places:
            try:
                data = read_regular_file(place)  # a link (the link action) is read through
            except (OSError, ValueError):
                continue
            if entry.content_hash is None or content_hash(data) == entry.content_hash:
                return data
        raise PictureGone(f"{entry.source} is not where the run left it, or has changed since it was scored")

    def prefetch(self, item_ids: list[str]) -> int:
        """Read, in one pass over the run's source, the pictures of these rows that no local file holds, and
        keep them under the run folder. Returns how many were read."""
        from mona_pipeline.sort.sources import open_source

        wanted: dict[str, str] = {}
        for item_id in item_ids:
            entry = self.journal.get(item_id)
            if entry is None or not entry.content_hash or self._cached(entry.content_hash).is_file():
                continue
            if Path(entry.source).is_file() or (entry.destination and Path(entry.destination).is_file()):
                continue  # a local file: read when it is shown, never copied
            wanted[item_of(entry.picture or entry.item_id)] = entry.content_hash
        if not wanted:
            return 0
        source = open_source(self.journal.info()["source"])
        read = 0
        for item in source.items_for(sorted(wanted)):
            try:
                data = item.read()
            except Exception:  # a damaged member: the page says it cannot show it
                continue
            if content_hash(data) == wanted.get(item.item_id):
                path = self._cached(wanted[item.item_id])
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
                read += 1
        return read

    def thumbnail(self, item_id: str) -> bytes:
        """A JPEG of the row's picture, at most THUMB_SIDE pixels a side, made once and cached."""
        entry = self.journal.get(item_id)
        path = self.folder / "thumbs" / f"{(entry.content_hash if entry else None) or 'none'}.jpg"
        if path.is_file():
            return path.read_bytes()
        with Image.open(io.BytesIO(self.read(item_id))) as image:
            image.draft("RGB", (THUMB_SIDE, THUMB_SIDE))
            picture = image.convert("RGB")
            picture.thumbnail((THUMB_SIDE, THUMB_SIDE))
            buffer = io.BytesIO()
            picture.save(buffer, "JPEG", quality=85)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(buffer.getvalue())
        return buffer.getvalue()
