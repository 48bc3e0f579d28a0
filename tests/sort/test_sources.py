"""Sources: archives read in place, hostile member names, damaged archives, path lists, unknown kinds."""

from __future__ import annotations

import io
import tarfile
import zipfile

import pytest

from mona_pipeline.sort import sort_source
from mona_pipeline.sort.reading import SourceError, safe_relative
from mona_pipeline.sort.sources import open_source
from tests.conftest import colour_picture, picture_bytes
from tests.sort.conftest import BLUE, RED, file_hash, hostile_zip, journal_entries, sort_request, tree


def test_zip_members_never_escape_the_output_and_the_archive_is_unchanged(tmp_path, colour_model):
    archive = hostile_zip(tmp_path / "pictures.zip")
    before = file_hash(archive.read_bytes())
    out = tmp_path / "deep" / "out"
    summary = sort_source(sort_request(archive, out, colour_model))
    assert file_hash(archive.read_bytes()) == before
    written = set(tree(out / "keep"))
    assert {"escape.jpg", "etc/absolute.jpg", "dir/same.jpg", "windows/drive.jpg"} <= written
    assert any(name.startswith("dir/same~") for name in written)  # the second same-named member kept apart
    assert all(p.resolve().is_relative_to(out.resolve()) for p in out.rglob("*"))
    assert not (tmp_path / "escape.jpg").exists() and not (tmp_path / "deep" / "escape.jpg").exists()
    assert summary.counts == {"keep": 5, "review": 0, "drop": 1, "unreadable": 1}


def test_move_from_an_archive_is_refused(tmp_path, colour_model):
    archive = hostile_zip(tmp_path / "pictures.zip")
    with pytest.raises(SourceError, match="never changed"):
        sort_source(sort_request(archive, tmp_path / "out", colour_model, action="move"))


@pytest.mark.parametrize("mode, suffix", [("w", ".tar"), ("w:gz", ".tar.gz"), ("w:bz2", ".tar.bz2"),
                                          ("w:xz", ".tar.xz")])
def test_tar_archives_are_read_in_place(tmp_path, colour_model, mode, suffix):
    archive = tmp_path / f"pictures{suffix}"
    with tarfile.open(archive, mode) as handle:
        for name, data in {"x/red.jpg": colour_picture(RED), "../up/blue.jpg": colour_picture(BLUE),
                           "zero.jpg": b""}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            handle.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("x/link.jpg")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        handle.addfile(link)  # a symlink member is never followed or written
    summary = sort_source(sort_request(archive, tmp_path / "out", colour_model))
    assert sorted(tree(tmp_path / "out" / "keep")) == ["x/red.jpg"]
    assert summary.counts == {"keep": 1, "review": 0, "drop": 1, "unreadable": 1}


def test_damaged_archives_are_reported_not_fatal(tmp_path, colour_model):
    archive = tmp_path / "cut.tar.gz"
    with tarfile.open(archive, "w:gz") as handle:
        for index in range(6):
            data = picture_bytes("PNG", size=(300, 300), seed=index)  # noisy: does not compress away
            info = tarfile.TarInfo(f"p{index}.png")
            info.size = len(data)
            handle.addfile(info, io.BytesIO(data))
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size * 2 // 3])  # cut off the end
    summary = sort_source(sort_request(archive, tmp_path / "out", colour_model))
    assert summary.counts["unreadable"] >= 1 and summary.pictures >= 2
    assert any("damaged" in error for _, error in summary.errors)
    crc = tmp_path / "crc.zip"
    with zipfile.ZipFile(crc, "w") as handle:
        handle.writestr("good.png", colour_picture(RED, "PNG"))
        handle.writestr("bad.png", colour_picture(RED, "PNG", size=(60, 60)))
    raw = bytearray(crc.read_bytes())
    position = raw.find(b"bad.png") + len(b"bad.png") + 40  # inside bad.png's data
    raw[position] ^= 0xFF
    crc.write_bytes(bytes(raw))
    summary = sort_source(sort_request(crc, tmp_path / "out2", colour_model))
    entries = journal_entries(summary)
    assert entries["good.png"].decision == "keep"
    assert entries["bad.png"].decision == "unreadable" and "unreadable" in entries["bad.png"].error


def test_list_source_reads_the_listed_paths(inbox, tmp_path, colour_model):
    listing = tmp_path / "list.txt"
    listing.write_text(f"# pictures to sort\ninbox/a/red.jpg\n{inbox / 'blue.webp'}\n\ninbox/missing.jpg\n")
    summary = sort_source(sort_request(listing, tmp_path / "out", colour_model))
    entries = journal_entries(summary)
    assert entries["inbox/a/red.jpg"].decision == "keep"
    assert entries["inbox/missing.jpg"].decision == "unreadable" and "unreadable" in entries["inbox/missing.jpg"].error
    assert sorted(tree(tmp_path / "out" / "keep")) == ["inbox/a/red.jpg"]


def test_unknown_or_missing_sources_are_named(tmp_path):
    with pytest.raises(SourceError, match="source not found"):
        open_source(tmp_path / "nope")
    (tmp_path / "fake.zip").write_text("not a zip")
    with pytest.raises(SourceError, match="not a zip archive"):
        open_source(tmp_path / "fake.zip")
    (tmp_path / "thing.bin").write_text("?")
    with pytest.raises(SourceError, match="unknown source kind"):
        open_source(tmp_path / "thing.bin")


@pytest.mark.parametrize("name, expected", [("../../x.jpg", "x.jpg"), ("/etc/x.jpg", "etc/x.jpg"),
                                            ("a/./b/../c.jpg", "a/b/c.jpg"), ("C:\\w\\x.jpg", "w/x.jpg"),
                                            ("..", "unnamed")])
def test_safe_relative(name, expected):
    assert safe_relative(name).as_posix() == expected
