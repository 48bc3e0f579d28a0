"""The bulk sort: every source kind, every action, the review band, hostile input, resume and undo."""

from __future__ import annotations

import hashlib
import io
import sqlite3
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from mona_pipeline.journal import Journal
from mona_pipeline.sort import SortRequest, decide, purge_run, sort_source, undo_run
from mona_pipeline.sources import SourceError, open_source, safe_relative
from tests.conftest import colour_picture, picture_bytes

RED, PINK, BLUE = (220, 20, 20), (140, 100, 120), (20, 20, 220)  # keep, review (with R = 0.5), drop


def _hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): _hash(p.read_bytes()) for p in sorted(root.rglob("*"))
            if p.is_file() and not p.is_symlink()}


@pytest.fixture
def inbox(tmp_path) -> Path:
    """A folder of pictures: red ones to keep, pink to review, blue to drop, and broken files."""
    root = tmp_path / "inbox"
    files = {
        "a/red.jpg": colour_picture(RED),
        "b/red.jpg": colour_picture(RED, size=(50, 40)),  # same name, other folder, other bytes
        "a/pink.png": colour_picture(PINK, "PNG"),
        "blue.webp": colour_picture(BLUE, "WEBP"),
        "deep/er/blue.gif": colour_picture(BLUE, "GIF"),
        "red_really_png.jpg": colour_picture(RED, "PNG"),  # wrong extension, fine picture
        "scan.tiff": colour_picture(RED, "TIFF"),  # decoded by Pillow, not TF
        "empty.jpg": b"",
        "truncated.jpg": colour_picture(RED, size=(300, 300))[:300],
        "garbage.png": b"not a picture at all" * 10,
        "huge.png": picture_bytes("PNG", size=(4000, 3000)),  # over the request's pixel limit below
    }
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    (root / "notes.txt").write_text("not a picture, never touched")
    (root / "a" / "loop").symlink_to(root, target_is_directory=True)  # a symlink loop
    return root


def _request(source, out, model, **overrides) -> SortRequest:
    return SortRequest(source=str(source), out=out, model=model, batch_size=4, max_image_pixels=2_000_000,
                       **overrides)


def _journal(summary) -> dict:
    with Journal(Path(summary["journal"])) as journal:
        return {e.name: e for e in journal.entries()}


def test_decide_with_and_without_review_band():
    assert [decide(s, 0.9, None) for s in (0.95, 0.9, 0.6, 0.1, None)] == ["keep", "keep", "drop", "drop",
                                                                         "unreadable"]
    assert [decide(s, 0.9, 0.5) for s in (0.95, 0.6, 0.5, 0.4)] == ["keep", "review", "review", "drop"]


def test_copy_keeps_relative_paths_and_records_every_picture(inbox, tmp_path, colour_model):
    before = _tree(inbox)
    summary = sort_source(_request(inbox, tmp_path / "out", colour_model))
    out = tmp_path / "out"
    assert sorted(_tree(out / "keep")) == ["a/red.jpg", "b/red.jpg", "red_really_png.jpg", "scan.tiff"]
    assert _tree(inbox) == before  # copy never changes the source
    entries = _journal(summary)
    assert len(entries) == 11  # every picture file once; notes.txt is not a picture
    assert entries["a/pink.png"].decision == "drop" and entries["blue.webp"].decision == "drop"
    reasons = {name: entries[name].error for name in ("empty.jpg", "truncated.jpg", "garbage.png", "huge.png")}
    assert "zero-byte" in reasons["empty.jpg"] and "too large" in reasons["huge.png"]
    assert "not a picture" in reasons["garbage.png"]
    assert reasons["truncated.jpg"]  # TF refused it, Pillow too: recorded, not fatal
    assert all(entries[n].decision == "unreadable" for n in reasons)
    assert summary["counts"] == {"keep": 4, "review": 0, "drop": 3, "unreadable": 4}
    report = Path(summary["report"]).read_text()
    assert "a/red.jpg" in report and "zero-byte" in report


def test_review_band_sends_middle_scores_to_review(inbox, tmp_path, colour_model):
    summary = sort_source(_request(inbox, tmp_path / "out", colour_model, review_from=0.5))
    assert sorted(_tree(tmp_path / "out" / "review")) == ["a/pink.png"]
    assert summary["counts"]["review"] == 1


def test_review_band_above_confidence_is_refused(inbox, tmp_path, colour_model):
    with pytest.raises(ValueError, match="must be below"):
        SortRequest(source=str(inbox), out=tmp_path, confidence=0.5, review_from=0.7)
    with pytest.raises(ValueError, match="must be below the confidence"):
        sort_source(_request(inbox, tmp_path / "out", colour_model, review_from=0.95))  # model's P is 0.9


def test_move_then_undo_restores_every_file_byte_for_byte(inbox, tmp_path, colour_model):
    before = _tree(inbox)
    summary = sort_source(_request(inbox, tmp_path / "out", colour_model, action="move", review_from=0.5))
    kept = _tree(tmp_path / "out" / "keep")
    assert sorted(kept) == ["a/red.jpg", "b/red.jpg", "red_really_png.jpg", "scan.tiff"]
    assert not (inbox / "a" / "red.jpg").exists() and (inbox / "blue.webp").exists()
    moved = {**{f"keep/{k}": v for k, v in kept.items()},
             **{f"review/{k}": v for k, v in _tree(tmp_path / "out" / "review").items()}}
    assert sorted(set(moved.values()) | set(_tree(inbox).values())) == sorted(set(before.values()))
    result = undo_run(Path(summary["journal"]).parent)
    assert result["problems"] == [] and result["restored"] == 5
    assert _tree(inbox) == before
    assert _tree(tmp_path / "out" / "keep") == {}


def test_delete_moves_drops_to_trash_and_only_purge_removes_them(inbox, tmp_path, colour_model):
    before = _tree(inbox)
    summary = sort_source(_request(inbox, tmp_path / "out", colour_model, action="delete"))
    run_dir = Path(summary["journal"]).parent
    assert sorted(_tree(run_dir / "trash")) == ["a/pink.png", "blue.webp", "deep/er/blue.gif"]
    assert (inbox / "a" / "red.jpg").exists() and not (inbox / "blue.webp").exists()
    assert (inbox / "empty.jpg").exists()  # unreadable pictures are never deleted
    undo_run(run_dir)
    assert _tree(inbox) == before
    sort_source(_request(inbox, tmp_path / "out", colour_model, action="delete", run="second"))
    second = tmp_path / "out" / "runs" / "second"
    assert purge_run(second)["purged"] == 3
    assert _tree(second / "trash") == {}


def test_link_makes_symlinks_to_the_sources(inbox, tmp_path, colour_model):
    sort_source(_request(inbox, tmp_path / "out", colour_model, action="link"))
    link = tmp_path / "out" / "keep" / "a" / "red.jpg"
    assert link.is_symlink() and link.resolve() == (inbox / "a" / "red.jpg").resolve()


def test_an_output_folder_inside_the_source_is_never_sorted_again(inbox, tmp_path, colour_model):
    request = _request(inbox, inbox / "sorted", colour_model, action="move")
    first = sort_source(request)
    second = sort_source(request.model_copy(update={"run": "again"}))
    assert second["this_session"]["keep"] == 0 and first["counts"]["keep"] == 4
    assert sorted(_tree(inbox / "sorted" / "keep")) == ["a/red.jpg", "b/red.jpg", "red_really_png.jpg", "scan.tiff"]


def test_none_only_reports(inbox, tmp_path, colour_model):
    summary = sort_source(_request(inbox, tmp_path / "out", colour_model, action="none"))
    assert summary["counts"]["keep"] == 4
    assert not (tmp_path / "out" / "keep").exists()


def _hostile_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("../../escape.jpg", colour_picture(RED))
        archive.writestr("/etc/absolute.jpg", colour_picture(RED, size=(30, 30)))
        archive.writestr("dir/same.jpg", colour_picture(RED, size=(31, 31)))
        archive.writestr("dir/same.jpg", colour_picture(RED, size=(32, 32)))  # duplicate member name
        archive.writestr("C:\\windows\\drive.jpg", colour_picture(RED, size=(33, 33)))
        archive.writestr("blue.png", colour_picture(BLUE, "PNG"))
        archive.writestr("broken.jpg", b"\xff\xd8\xff\xe0broken")
    return path


def test_zip_members_never_escape_the_output_and_the_archive_is_unchanged(tmp_path, colour_model):
    archive = _hostile_zip(tmp_path / "pictures.zip")
    before = _hash(archive.read_bytes())
    out = tmp_path / "deep" / "out"
    summary = sort_source(_request(archive, out, colour_model))
    assert _hash(archive.read_bytes()) == before
    written = set(_tree(out / "keep"))
    assert {"escape.jpg", "etc/absolute.jpg", "dir/same.jpg", "windows/drive.jpg"} <= written
    assert any(name.startswith("dir/same~") for name in written)  # the second same-named member kept apart
    assert all(p.resolve().is_relative_to(out.resolve()) for p in out.rglob("*"))
    assert not (tmp_path / "escape.jpg").exists() and not (tmp_path / "deep" / "escape.jpg").exists()
    assert summary["counts"] == {"keep": 5, "review": 0, "drop": 1, "unreadable": 1}


def test_move_from_an_archive_is_refused(tmp_path, colour_model):
    archive = _hostile_zip(tmp_path / "pictures.zip")
    with pytest.raises(SourceError, match="never changed"):
        sort_source(_request(archive, tmp_path / "out", colour_model, action="move"))


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
    summary = sort_source(_request(archive, tmp_path / "out", colour_model))
    assert sorted(_tree(tmp_path / "out" / "keep")) == ["x/red.jpg"]
    assert summary["counts"] == {"keep": 1, "review": 0, "drop": 1, "unreadable": 1}


def test_damaged_archives_are_reported_not_fatal(tmp_path, colour_model):
    archive = tmp_path / "cut.tar.gz"
    with tarfile.open(archive, "w:gz") as handle:
        for index in range(6):
            data = picture_bytes("PNG", size=(300, 300), seed=index)  # noisy: does not compress away
            info = tarfile.TarInfo(f"p{index}.png")
            info.size = len(data)
            handle.addfile(info, io.BytesIO(data))
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size * 2 // 3])  # cut off the end
    summary = sort_source(_request(archive, tmp_path / "out", colour_model))
    assert summary["counts"]["unreadable"] >= 1 and summary["pictures"] >= 2
    assert any("damaged" in error for _, error in summary["errors"])
    crc = tmp_path / "crc.zip"
    with zipfile.ZipFile(crc, "w") as handle:
        handle.writestr("good.png", colour_picture(RED, "PNG"))
        handle.writestr("bad.png", colour_picture(RED, "PNG", size=(60, 60)))
    raw = bytearray(crc.read_bytes())
    position = raw.find(b"bad.png") + len(b"bad.png") + 40  # inside bad.png's data
    raw[position] ^= 0xFF
    crc.write_bytes(bytes(raw))
    summary = sort_source(_request(crc, tmp_path / "out2", colour_model))
    entries = _journal(summary)
    assert entries["good.png"].decision == "keep"
    assert entries["bad.png"].decision == "unreadable" and "unreadable" in entries["bad.png"].error


def test_list_source_reads_the_listed_paths(inbox, tmp_path, colour_model):
    listing = tmp_path / "list.txt"
    listing.write_text(f"# pictures to sort\ninbox/a/red.jpg\n{inbox / 'blue.webp'}\n\ninbox/missing.jpg\n")
    summary = sort_source(_request(listing, tmp_path / "out", colour_model))
    entries = _journal(summary)
    assert entries["inbox/a/red.jpg"].decision == "keep"
    assert entries["inbox/missing.jpg"].decision == "unreadable" and "unreadable" in entries["inbox/missing.jpg"].error
    assert sorted(_tree(tmp_path / "out" / "keep")) == ["inbox/a/red.jpg"]


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


def test_rerun_resumes_without_redoing_or_duplicating(inbox, tmp_path, colour_model):
    request = _request(inbox, tmp_path / "out", colour_model)
    first = sort_source(request)
    second = sort_source(request)
    assert second["resumed_skipped"] == 11 and second["this_session"] == {"keep": 0, "review": 0, "drop": 0,
                                                                          "unreadable": 0}
    assert second["counts"] == first["counts"]
    assert len(_tree(tmp_path / "out" / "keep")) == 4


def test_killed_move_run_resumes_and_accounts_for_every_picture_once(tmp_path, colour_model):
    inbox = tmp_path / "big"
    colours = [RED, BLUE, PINK]
    for index in range(360):
        path = inbox / f"d{index % 7}" / f"p{index:04d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(colour_picture(colours[index % 3], "PNG", size=(40 + index % 13, 40)))
    before = _tree(inbox)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "mona_pipeline.cli", "--params", str(tmp_path / "no-params.yaml"), "sort",
               str(inbox), "--out", str(out), "--model", str(colour_model), "--action", "move",
               "--review-from", "0.5", "--batch-size", "4", "--run", "killed", "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    journal = out / "runs" / "killed" / "journal.sqlite"
    deadline = time.time() + 300
    done = 0
    while time.time() < deadline and process.poll() is None:
        if journal.exists():
            try:
                with sqlite3.connect(journal) as connection:
                    done = connection.execute("SELECT COUNT(*) FROM entries WHERE status = 'done'").fetchone()[0]
            except sqlite3.Error:
                done = 0
            if done >= 40:
                break
        time.sleep(0.05)
    process.kill()
    process.wait()
    assert 40 <= done < 360, f"the run was not stopped half way ({done} done): {process.stdout.read()[-2000:]}"
    resumed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    with Journal(journal) as reader:
        entries = list(reader.entries())
    assert len(entries) == 360 and {e.status for e in entries} == {"done"}
    moved = {**{f"keep/{k}": v for k, v in _tree(out / "keep").items()},
             **{f"review/{k}": v for k, v in _tree(out / "review").items()}}
    left = _tree(inbox)
    assert len(moved) == 240 and len(left) == 120  # every picture in exactly one place
    assert sorted(list(moved.values()) + list(left.values())) == sorted(before.values())
    assert not list(out.rglob("*.partial"))
    result = undo_run(out / "runs" / "killed")
    assert result["problems"] == [] and result["restored"] == 240
    assert _tree(inbox) == before


def test_cli_sort_and_undo_print_where_things_are(inbox, tmp_path, colour_model):
    from mona_pipeline.cli import main

    out = tmp_path / "out"
    code = main(["--params", str(tmp_path / "none.yaml"), "sort", str(inbox), "--out", str(out), "--model",
                 str(colour_model), "--action", "move", "--quiet", "--run", "cli"])
    assert code == 0
    assert main(["undo", str(out / "runs" / "cli")]) == 0
    assert main(["purge", str(out / "runs" / "cli")]) == 2  # needs --yes
    assert main(["sort", str(tmp_path / "missing"), "--out", str(out), "--model", str(colour_model)]) == 2
