"""Issue 22's SILENT and WRONG cases: nothing skipped without a count, and the right outcome, with a census.

Each case runs the command line as a user would and checks the exit code, the message, and where every
picture is (by SHA-256). The concurrency cases are in test_one_process_per_run.py, the interrupts in
test_interrupts.py.
"""

from __future__ import annotations

import io
import json
import os
import zipfile

import pytest
from PIL import Image

from tests.conftest import colour_picture
from tests.sort.harness import (BLUE, RED, Outcome, assert_each_once, files_under, make_pictures, needs_userns,
                                on_small_disk, pictures_line, run_folder, sha, sort_arguments, summary_of)


def move(source, out, model, *more) -> list:
    return sort_arguments(source, out, model, "--action", "move", "--confidence", "0.5", "--tiling", "off", *more)


# ---------------------------------------------------------------- a run's identity is the content


def test_a_new_picture_under_a_name_a_finished_move_run_moved_is_sorted_on_the_next_run(tmp_path, cli, model):
    inbox, out = tmp_path / "inbox", tmp_path / "O"
    first = make_pictures(inbox, 3)
    cli(*move(inbox, out, model, "--run", "nightly")).assert_clean(0)
    second = make_pictures(inbox, 3, start=50)  # other pictures ...
    for index, name in enumerate(sorted(second)):  # ... under the names the first night used
        (inbox / name).rename(inbox / f"p{index:03d}.png")
    again = cli(*move(inbox, out, model, "--run", "nightly"))
    again.assert_clean(0)
    assert files_under(inbox) == {}, again.describe()
    assert_each_once([*first.values(), *second.values()], out / "keep")
    # Both nights' pictures had the same three names: undo puts three back and says why not the others.
    undo = cli("undo", out / "runs" / "nightly")
    undo.assert_clean(1)
    assert undo.stderr.count("exists again with other content") == 3, undo.describe()
    assert len(files_under(inbox)) == 3
    assert_each_once([*first.values(), *second.values()], inbox, out / "keep")


def test_a_new_picture_under_a_name_a_killed_move_run_had_moved_is_sorted_on_rerun(tmp_path, cli, child, model):
    inbox, out = tmp_path / "inbox", tmp_path / "O"
    make_pictures(inbox, 6)
    killed = child(*move(inbox, out, model, "--run", "n"), environment={
        "MONA_FAULT_AT": "3", "MONA_FAULT_WHEN": "after", "MONA_FAULT_UNDER": str(inbox)})
    assert killed.code == -9, killed.describe()
    moved = sorted(files_under(out / "keep"))
    assert moved, "nothing was moved before the kill"
    newcomers = {}
    for name in moved:  # new pictures arrive under the names already moved
        data = colour_picture(RED, "PNG", size=(70, 20 + len(newcomers)))
        (inbox / os.fsdecode(name)).write_bytes(data)
        newcomers[name] = sha(data)
    cli(*move(inbox, out, model, "--run", "n")).assert_clean(0)
    assert files_under(inbox) == {}
    assert set(newcomers.values()) <= set(files_under(out / "keep").values())


# ---------------------------------------------------------------- nothing skipped without a count


def test_hidden_files_unknown_formats_and_names_without_extension_are_counted(tmp_path, cli, model):
    inbox, out = tmp_path / "inbox", tmp_path / "O"
    make_pictures(inbox, 2)
    (inbox / ".hidden.png").write_bytes(colour_picture(RED, "PNG"))
    (inbox / ".cache").mkdir()
    (inbox / ".cache" / "x.png").write_bytes(colour_picture(RED, "PNG", size=(31, 30)))
    (inbox / "photo.heic").write_bytes(b"\x00\x00\x00\x18ftypheic" + bytes(100))
    (inbox / "photo.avif").write_bytes(b"\x00\x00\x00\x1cftypavif" + bytes(100))
    (inbox / "README").write_bytes(colour_picture(RED, "PNG", size=(32, 30)))  # a picture without an extension
    sort = cli(*sort_arguments(inbox, out, model, "--confidence", "0.5"))
    sort.assert_clean(0)
    assert pictures_line(sort).startswith("2 pictures: 2 keep"), sort.describe()
    skipped = summary_of(sort)["skipped"]
    assert skipped == {"hidden": 2, "not a picture name": 3}, skipped
    assert "skipped 5 files or folders: 2 hidden, 3 not a picture name" in sort.stdout, sort.describe()
    report = (run_folder(sort) / "report.html").read_text()
    assert "2 hidden" in report and "3 not a picture name" in report


@pytest.mark.parametrize("option", ["source", "out"])
def test_an_empty_source_or_out_is_refused(tmp_path, cli, model, option, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_pictures(tmp_path / "inbox", 2)
    source, out = ("", tmp_path / "O") if option == "source" else (tmp_path / "inbox", "")
    sort = cli("sort", source, "--out", out, "--model", model, "--quiet")
    sort.assert_clean(2)
    assert f"{option} is empty" in sort.stderr, sort.describe()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inbox"]  # nothing written in the current folder


def test_an_earlier_runs_out_inside_the_source_is_skipped_with_a_note(tmp_path, cli, model):
    inbox = tmp_path / "inbox"
    make_pictures(inbox, 4, colours=(RED, BLUE))
    cli(*sort_arguments(inbox, inbox / "sorted", model, "--confidence", "0.5", "--action", "delete")).assert_clean(0)
    # Another sort of the inbox, into another OUT: the first run's keep/, trash and thumbnails are not new pictures.
    again = cli(*sort_arguments(inbox, tmp_path / "elsewhere", model, "--confidence", "0.5"))
    again.assert_clean(0)
    assert pictures_line(again).startswith("2 pictures: 2 keep"), again.describe()
    assert f"skipped {inbox / 'sorted'}: the output of an earlier sort" in again.stdout, again.describe()


@pytest.mark.parametrize("kind", ["missing", "folder"])
def test_a_params_file_that_is_missing_or_a_folder_is_an_error(tmp_path, model, kind, capsys):
    from mona_pipeline.cli import main

    make_pictures(tmp_path / "inbox", 1)
    params = tmp_path / "nope.yaml"
    if kind == "folder":
        params.mkdir()
    code = main(["--params", str(params), "sort", str(tmp_path / "inbox"), "--out", str(tmp_path / "O"),
                 "--model", str(model), "--quiet"])
    assert code == 2
    assert str(params) in capsys.readouterr().err
    assert not (tmp_path / "O").exists()


def test_a_jpeg_whose_header_claims_more_than_its_data_is_unreadable(tmp_path, cli, model):
    inbox, out = tmp_path / "inbox", tmp_path / "O"
    make_pictures(inbox, 1)
    buffer = io.BytesIO()
    Image.new("RGB", (400, 300), RED).save(buffer, "JPEG")
    data = bytearray(buffer.getvalue())
    frame = data.index(b"\xff\xc0")  # SOF0: length(2) precision(1) height(2) width(2)
    data[frame + 5:frame + 9] = (7000).to_bytes(2, "big") + (7000).to_bytes(2, "big")
    (inbox / "liar.jpg").write_bytes(bytes(data))
    sort = cli(*sort_arguments(inbox, out, model, "--confidence", "0.5"))
    sort.assert_clean(0)
    assert pictures_line(sort).startswith("2 pictures: 1 keep, 0 review, 0 drop, 1 unreadable"), sort.describe()
    assert "truncated" in json.dumps(summary_of(sort)["errors"]), summary_of(sort)["errors"]


def test_a_move_run_says_when_identical_copies_were_already_there(tmp_path, cli, model):
    inbox, out = tmp_path / "inbox", tmp_path / "O"
    originals = make_pictures(inbox, 3)
    cli(*sort_arguments(inbox, out, model, "--confidence", "0.5")).assert_clean(0)  # copies first
    sort = cli(*move(inbox, out, model))
    sort.assert_clean(0)
    assert "3 pictures were already in" in sort.stdout and "left in the source" in sort.stdout, sort.describe()
    assert_each_once(originals.values(), out / "keep")
    assert "3 pictures were already in" in (run_folder(sort) / "report.html").read_text()


# ---------------------------------------------------------------- the right outcome


def test_a_symlink_in_a_list_is_counted_not_moved_as_a_dangling_link(tmp_path, cli, model):
    pictures, out = tmp_path / "pictures", tmp_path / "O"
    originals = make_pictures(pictures, 2)
    (tmp_path / "alias.png").symlink_to(pictures / "p000.png")
    listing = tmp_path / "list.txt"
    listing.write_text(f"{tmp_path / 'alias.png'}\n{pictures / 'p001.png'}\n")
    sort = cli(*move(listing, out, model))
    sort.assert_clean(0)
    assert pictures_line(sort).startswith("1 pictures"), sort.describe()
    assert summary_of(sort)["skipped"] == {"a link (not followed)": 1}
    assert (tmp_path / "alias.png").is_symlink() and (tmp_path / "alias.png").exists()
    cli("undo", run_folder(sort)).assert_clean(0)
    assert files_under(pictures) == {name.encode(): digest for name, digest in originals.items()}


@needs_userns
def test_a_read_only_source_is_copied_not_moved_and_the_run_goes_on(tmp_path, params_file, model):
    source, out = tmp_path / "dvd", tmp_path / "O"
    staging = tmp_path / "staging"
    originals = make_pictures(staging, 4)
    command = [os.environ.get("PYTHON", __import__("sys").executable), "-m", "mona_pipeline.cli", "--params",
               str(params_file), *map(str, move(source, out, model))]
    results = on_small_disk(tmp_path, source, [
        {"mount": {"size": "4m"}}, {"run": ["cp", "-r", f"{staging}/.", str(source)]}, {"remount": "ro"},
        {"run": command}, {"census": True}])
    sort = Outcome(results[3]["code"], results[3]["stdout"], results[3]["stderr"])
    sort.assert_clean(0)
    assert "4 pictures are on a read-only source: copied, not moved" in sort.stdout, sort.describe()
    assert sorted(results[4]["census"].values()) == sorted(originals.values())  # the source as it was
    assert_each_once(originals.values(), out / "keep")


def test_a_link_in_out_pointing_outside_is_found_before_any_work(tmp_path, cli, model):
    inbox, out, elsewhere = tmp_path / "inbox", tmp_path / "O", tmp_path / "elsewhere"
    originals = make_pictures(inbox, 6)
    elsewhere.mkdir()
    out.mkdir()
    (out / "keep").symlink_to(elsewhere, target_is_directory=True)
    sort = cli(*move(inbox, out, model))
    sort.assert_clean(2)
    assert f"{out / 'keep'} is a link" in sort.stderr, sort.describe()
    assert files_under(inbox) == {name.encode(): digest for name, digest in originals.items()}
    assert files_under(elsewhere) == {}


def test_a_link_deeper_in_keep_is_never_followed_and_the_run_goes_on(tmp_path, cli, model):
    inbox, out, elsewhere = tmp_path / "inbox", tmp_path / "O", tmp_path / "elsewhere"
    originals = {**make_pictures(inbox, 3), **{f"sub/{k}": v for k, v in make_pictures(inbox / "sub", 2,
                                                                                        start=10).items()}}
    elsewhere.mkdir()
    (out / "keep").mkdir(parents=True)
    (out / "keep" / "sub").symlink_to(elsewhere, target_is_directory=True)
    sort = cli(*move(inbox, out, model))
    sort.assert_clean(1)  # two pictures could not go where they belong: said, and left in place
    assert files_under(elsewhere) == {}
    assert_each_once(originals.values(), inbox, out / "keep")
    assert "is a link" in sort.stderr or "is a link" in json.dumps(summary_of(sort)["errors"]), sort.describe()


def test_undo_finds_a_moved_out_folder(tmp_path, cli, model):
    inbox, out = tmp_path / "inbox", tmp_path / "O"
    originals = make_pictures(inbox, 4)
    cli(*move(inbox, out, model, "--run", "r")).assert_clean(0)
    out.rename(tmp_path / "O2")
    undo = cli("undo", tmp_path / "O2" / "runs" / "r")
    undo.assert_clean(0)
    assert "restored 4" in undo.stdout, undo.describe()
    assert files_under(inbox) == {name.encode(): digest for name, digest in originals.items()}


def test_undo_of_a_copy_of_out_acts_on_that_copy_only(tmp_path, cli, model):
    import shutil

    inbox, out = tmp_path / "inbox", tmp_path / "O"
    make_pictures(inbox, 4)
    cli(*sort_arguments(inbox, out, model, "--run", "r")).assert_clean(0)
    kept = files_under(out / "keep")
    assert kept
    shutil.copytree(out, tmp_path / "backup", symlinks=True)  # a backup of OUT: both are there
    cli("undo", tmp_path / "backup" / "runs" / "r").assert_clean(0)
    assert files_under(out / "keep") == kept  # the original OUT is untouched
    assert files_under(tmp_path / "backup" / "keep") == {}


def test_purge_counts_only_what_it_deleted(tmp_path, cli, model):
    inbox, out, rescued = tmp_path / "inbox", tmp_path / "O", tmp_path / "rescued"
    make_pictures(inbox, 5, colours=(BLUE,))
    sort = cli(*sort_arguments(inbox, out, model, "--action", "delete", "--confidence", "0.5"))
    sort.assert_clean(0)
    trash = run_folder(sort) / "trash"
    rescued.mkdir()
    for name in ("p000.png", "p001.png"):  # the user takes two back by hand
        (trash / name).rename(rescued / name)
    purge = cli("purge", run_folder(sort), "--yes")
    purge.assert_clean(0)
    assert "deleted 3 trashed pictures for good" in purge.stdout, purge.describe()
    assert "2 were no longer in the trash" in purge.stdout, purge.describe()
    undo = cli("undo", run_folder(sort))
    assert "3 trashed pictures were purged" in undo.stderr, undo.describe()
    assert len(files_under(rescued)) == 2


def test_identical_zip_members_under_one_name_in_one_batch_are_written_once(tmp_path, cli, model):
    archive, out = tmp_path / "twice.zip", tmp_path / "O"
    data = colour_picture(RED, "PNG")
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("same.png", data)
        handle.writestr("same.png", data)
    sort = cli(*sort_arguments(archive, out, model, "--confidence", "0.5"))
    sort.assert_clean(0)
    assert files_under(out / "keep") == {b"same.png": sha(data)}


@pytest.mark.parametrize("name", ["..", ".", "../elsewhere", ".hidden"])
def test_run_names_that_are_not_plain_names_are_refused(tmp_path, cli, model, name):
    make_pictures(tmp_path / "inbox", 1)
    sort = cli(*sort_arguments(tmp_path / "inbox", tmp_path / "O", model, "--run", name))
    sort.assert_clean(2)
    assert "run name" in sort.stderr and repr(name) in sort.stderr, sort.describe()
    assert not (tmp_path / "O" / "journal.sqlite").exists() and not (tmp_path / "journal.sqlite").exists()


def test_memory_does_not_grow_with_consecutive_refused_pictures(tmp_path, child, model):
    """Pictures of 20 MB that are all refused (too many pixels), at a batch of 2: 60 of them in a row need no
    more memory than 10 (before: 710 / 1,209 / 1,887 MB for 3 / 30 / 60)."""
    header = colour_picture(RED, "PNG", size=(9000, 9000))  # 81 Mpixel: refused by the 64 Mpixel limit
    padding = os.urandom(20 * 2**20 - len(header))
    peaks = {}
    for count in (10, 60):
        inbox = tmp_path / f"inbox{count}"
        make_pictures(inbox, 1)
        for index in range(count):
            (inbox / f"big{index:02d}.png").write_bytes(header + padding + index.to_bytes(2, "big"))
        sort = child(*sort_arguments(inbox, tmp_path / f"O{count}", model, "--batch-size", "2", "--confidence", "0.5"),
                     memory_limit_mb=4000)
        sort.assert_clean(0)
        assert pictures_line(sort).startswith(f"{count + 1} pictures: 1 keep, 0 review, 0 drop, {count} unreadable"), \
            sort.describe()
        peaks[count] = sort.peak_mb
    assert peaks[60] < peaks[10] + 100, peaks
