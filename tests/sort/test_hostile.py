"""A hostile-input corpus and fault suite for `mona sort`, `mona undo` and `mona purge` (issue 12).

Every case makes its own tiny source, runs the command line on it (in this process, or
as a child process where it could hang, blow up memory, be killed or needs another user
or a tiny disk) and checks the outcome as a user would: the exit code, the message, and
a census of the pictures by SHA-256 (each original exactly once where it belongs,
nothing written outside OUT). The sort promises:

    never loses a picture            census after every run, kill, undo and purge
    never duplicates a picture       census: no original twice where the run put it
    never writes outside OUT         census of everything beside OUT
    memory bounded by the batch      peak resident memory of the child, under a watchdog
    never hangs                      every child runs under a timeout
    exits non-zero when it could not finish, with a message and no traceback

The randomised kill test is in test_kills.py.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.conftest import colour_picture, make_colour_model, picture_bytes
from tests.sort.harness import (BLUE, PINK, RED, Outcome, assert_each_once, files_under, hashes, make_pictures,
                                needs_userns, on_small_disk, outside, pictures_line, run_child, run_folder, sha,
                                sort_arguments, summary_of)


# ================================================================ 1, 2: loss of pictures


def test_sorting_a_runs_own_keep_folder_into_the_same_out_then_undoing_both_loses_nothing(tmp_path, cli, model):
    """Case 1: in the second sort each destination is its own source; undo must not delete it."""
    source, out = tmp_path / "src", tmp_path / "O"
    originals = make_pictures(source, 10)
    cli(*sort_arguments(source, out, model, "--action", "move", "--confidence", "0", "--run", "first"))\
        .assert_clean(0)
    second = cli(*sort_arguments(out / "keep", out, model, "--confidence", "0", "--run", "second"))
    second.assert_clean(0)
    assert_each_once(originals.values(), source, out / "keep")  # the second sort made no second copy
    undo_second = cli("undo", out / "runs" / "second")
    undo_second.assert_clean(0)
    assert_each_once(originals.values(), source, out / "keep")
    undo_first = cli("undo", out / "runs" / "first")
    undo_first.assert_clean(0)
    assert "restored 10" in undo_first.stdout, undo_first.describe()
    assert files_under(source) == {name.encode(): digest for name, digest in originals.items()}


def test_recovery_never_deletes_a_source_whose_destination_was_there_before_the_run(tmp_path, cli, child, model):
    """Case 2: copy run; more pictures; a move run into the same OUT killed while its rows are planned;
    rerun; undo the copy run. The first pictures must still exist."""
    inbox, out = tmp_path / "inbox", tmp_path / "O"
    first = make_pictures(inbox, 10)
    cli(*sort_arguments(inbox, out, model, "--confidence", "0", "--run", "copyrun")).assert_clean(0)
    later = make_pictures(inbox, 5, start=10)
    move = sort_arguments(inbox, out, model, "--action", "move", "--confidence", "0", "--run", "moverun")
    killed = child(*move, environment={"MONA_FAULT_AT": "1", "MONA_FAULT_UNDER": str(inbox)})
    assert killed.code == -9, f"the move run was not killed at its first change to the inbox\n{killed.describe()}"
    cli(*move).assert_clean(0, 1)
    assert_each_once(first.values(), inbox)  # identical pictures already in OUT/keep: left in the inbox
    assert_each_once(later.values(), out / "keep")
    cli("undo", out / "runs" / "copyrun").assert_clean(0)
    assert_each_once(list(first.values()) + list(later.values()), inbox, out / "keep")


def test_undo_of_a_copy_run_keeps_a_picture_that_was_in_out_before(tmp_path, cli, model):
    """A destination is never a file the run did not create, even one with the same content."""
    source, out = tmp_path / "src", tmp_path / "O"
    originals = make_pictures(source, 3)
    (out / "keep").mkdir(parents=True)
    shutil.copy(source / "p000.png", out / "keep" / "p000.png")  # the user's own copy, there before
    sort = cli(*sort_arguments(source, out, model, "--confidence", "0"))
    sort.assert_clean(0)
    assert_each_once(originals.values(), out / "keep")
    cli("undo", run_folder(sort)).assert_clean(0)
    assert files_under(out / "keep") == {b"p000.png": originals["p000.png"]}


# ================================================================ 3: silent stops


def test_a_file_name_that_is_not_utf8_is_sorted_and_the_run_goes_on(tmp_path, cli, model):
    source, out = tmp_path / "u", tmp_path / "uo"
    originals = make_pictures(source, 10)
    odd = os.path.join(os.fsencode(source), b"b\xff.png")
    data = colour_picture(RED, "PNG", size=(77, 30))
    with open(odd, "wb") as handle:
        handle.write(data)
    sort = cli(*sort_arguments(source, out, model, "--confidence", "0.5"))
    sort.assert_clean(0)
    assert pictures_line(sort).startswith("11 pictures: 11 keep"), sort.describe()
    kept = files_under(out / "keep")
    assert kept.get(b"b\xff.png") == sha(data), sorted(kept)
    assert_each_once([*originals.values(), sha(data)], out / "keep")
    cli("undo", run_folder(sort)).assert_clean(0)
    assert files_under(out / "keep") == {}


def test_a_tar_member_name_that_is_not_utf8_is_sorted_and_the_run_goes_on(tmp_path, cli, model):
    archive, out = tmp_path / "odd.tar", tmp_path / "out"
    contents = []
    with tarfile.open(archive, "w", format=tarfile.GNU_FORMAT, encoding="utf-8", errors="surrogateescape") as tar:
        for index, name in enumerate([b"a.png", b"b\xff.png", b"c.png", b"d\xfe\xfd.png", b"e.png", b"f.png"]):
            data = colour_picture(RED, "PNG", size=(30 + index, 30))
            member = tarfile.TarInfo(os.fsdecode(name))
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
            contents.append(sha(data))
    sort = cli(*sort_arguments(archive, out, model, "--confidence", "0.5"))
    sort.assert_clean(0)
    assert pictures_line(sort).startswith("6 pictures: 6 keep"), sort.describe()
    assert_each_once(contents, out / "keep")


def _zip_of_pictures(path: Path, count: int, name=lambda index: f"p{index}.png") -> list[str]:
    contents = []
    with zipfile.ZipFile(path, "w") as archive:
        for index in range(count):
            data = colour_picture(RED, "PNG", size=(30 + index, 30))
            archive.writestr(name(index), data)
            contents.append(sha(data))
    return contents


def test_a_zip_with_a_corrupt_central_directory_is_an_error_not_zero_pictures(tmp_path, cli, model):
    archive, out = tmp_path / "corrupt.zip", tmp_path / "out"
    _zip_of_pictures(archive, 5)
    data = bytearray(archive.read_bytes())
    directory = data.index(b"PK\x01\x02")
    data[directory:directory + 4] = b"XX\x01\x02"  # the first central-directory record's signature
    archive.write_bytes(bytes(data))
    before = archive.read_bytes()
    sort = cli(*sort_arguments(archive, out, model))
    sort.assert_clean(1, 2)
    assert "corrupt.zip" in sort.stderr and "error" in sort.stderr.lower(), sort.describe()
    assert archive.read_bytes() == before


def test_a_zip_flagged_utf8_with_invalid_name_bytes_is_an_error_not_zero_pictures(tmp_path, cli, model):
    archive, out = tmp_path / "badname.zip", tmp_path / "out"
    _zip_of_pictures(archive, 4, name=lambda index: f"p{index}\u00ff.png")  # UTF-8 flag set, C3 BF in the name
    archive.write_bytes(archive.read_bytes().replace("\u00ff".encode(), b"\xff\xfe"))  # same length, not UTF-8
    sort = cli(*sort_arguments(archive, out, model))
    sort.assert_clean(1, 2)
    assert "badname.zip" in sort.stderr and "error" in sort.stderr.lower(), sort.describe()


# ================================================================ 4: wrong results with exit 0


def test_a_rerun_with_another_confidence_decides_with_it_and_undo_keeps_the_first_runs_copies(tmp_path, cli, model):
    source, out = tmp_path / "src", tmp_path / "O"
    pictures = make_pictures(source, 9, colours=(RED, PINK, BLUE))
    red = [h for name, h in pictures.items() if int(name[1:4]) % 3 == 0]
    pink = [h for name, h in pictures.items() if int(name[1:4]) % 3 == 1]
    strict = cli(*sort_arguments(source, out, model, "--confidence", "0.99"))
    strict.assert_clean(0)
    assert pictures_line(strict).startswith("9 pictures: 3 keep"), strict.describe()
    lenient = cli(*sort_arguments(source, out, model, "--confidence", "0.5"))
    lenient.assert_clean(0)
    assert pictures_line(lenient).startswith("9 pictures: 6 keep"), lenient.describe()
    assert summary_of(lenient)["confidence"] == 0.5
    assert run_folder(lenient) != run_folder(strict)
    assert_each_once(red + pink, out / "keep")  # the red ones were there already: not copied twice
    cli("undo", run_folder(lenient)).assert_clean(0)
    assert sorted(hashes(out / "keep").elements()) == sorted(red)  # the first run's copies stay


def test_resuming_a_named_run_with_another_confidence_is_refused(tmp_path, cli, model):
    source, out = tmp_path / "src", tmp_path / "O"
    make_pictures(source, 3)
    cli(*sort_arguments(source, out, model, "--confidence", "0.99", "--run", "mine")).assert_clean(0)
    again = cli(*sort_arguments(source, out, model, "--confidence", "0.5", "--run", "mine"))
    again.assert_clean(2)
    assert "confidence" in again.stderr and "0.99" in again.stderr and "0.5" in again.stderr, again.describe()


def test_a_rerun_with_another_model_decides_with_it(tmp_path, cli, model):
    source, out = tmp_path / "src", tmp_path / "O"
    make_pictures(source, 6, colours=(RED, PINK))
    strict_model = make_colour_model(tmp_path / "strict", threshold=0.99)
    lenient_model = make_colour_model(tmp_path / "lenient", threshold=0.5)
    strict = cli(*sort_arguments(source, out, strict_model))
    assert pictures_line(strict).startswith("6 pictures: 3 keep"), strict.describe()
    lenient = cli(*sort_arguments(source, out, lenient_model))
    lenient.assert_clean(0)
    assert pictures_line(lenient).startswith("6 pictures: 6 keep"), lenient.describe()
    assert run_folder(lenient) != run_folder(strict)


@pytest.mark.parametrize("batch_size", ["0", "-3"])
def test_a_batch_size_below_one_is_refused(tmp_path, cli, model, batch_size):
    make_pictures(tmp_path / "src", 2)
    sort = cli("sort", tmp_path / "src", "--out", tmp_path / "O", "--model", model, "--batch-size", batch_size,
               "--quiet")
    sort.assert_clean(2)
    assert "batch" in sort.stderr and batch_size in sort.stderr, sort.describe()
    assert not (tmp_path / "O").exists()


def test_an_unreadable_sub_folder_is_reported_and_the_run_exits_non_zero(tmp_path, child, model):
    source, out = tmp_path / "src", tmp_path / "O"
    readable = make_pictures(source / "open", 3)
    make_pictures(source / "locked", 3, prefix="q")
    (source / "locked").chmod(0o000)
    try:
        sort = child(*sort_arguments(source, out, model, "--confidence", "0.5"), unprivileged=True)
    finally:
        (source / "locked").chmod(0o755)
    sort.assert_clean(1)
    assert "locked" in sort.text and "could not be read" in sort.text, sort.describe()
    assert_each_once(readable.values(), out / "keep")
    assert summary_of(sort)["unreadable_folders"] == [str(source / "locked")], summary_of(sort)


def test_out_equal_to_the_source_never_sorts_the_runs_own_files(tmp_path, cli, model):
    source = tmp_path / "src"
    originals = make_pictures(source, 6, colours=(RED, RED, BLUE))
    first = cli(*sort_arguments(source, source, model, "--confidence", "0.5"))
    first.assert_clean(0)
    assert pictures_line(first).startswith("6 pictures: 4 keep"), first.describe()
    second = cli(*sort_arguments(source, source, model, "--confidence", "0.5"))
    second.assert_clean(0)
    assert pictures_line(second).startswith("6 pictures: 4 keep"), second.describe()
    assert sorted(p.name for p in (source / "keep").iterdir()) == ["p000.png", "p001.png", "p003.png", "p004.png"]
    assert {p.name: sha(p.read_bytes()) for p in source.iterdir() if p.is_file()} == originals  # untouched


def test_undo_after_purge_says_what_cannot_be_restored(tmp_path, cli, model):
    source, out = tmp_path / "src", tmp_path / "O"
    make_pictures(source, 4, colours=(RED, BLUE, BLUE, BLUE))
    sort = cli(*sort_arguments(source, out, model, "--action", "delete", "--confidence", "0.5"))
    sort.assert_clean(0)
    purge = cli("purge", run_folder(sort), "--yes")
    purge.assert_clean(0)
    assert "deleted 3" in purge.stdout, purge.describe()
    undo = cli("undo", run_folder(sort))
    undo.assert_clean(1)
    assert "purged" in undo.text and "3" in undo.text, undo.describe()


def test_a_failed_undo_is_retried(tmp_path, cli, model):
    source, out = tmp_path / "src", tmp_path / "O"
    originals = make_pictures(source, 3)
    sort = cli(*sort_arguments(source, out, model, "--action", "move", "--confidence", "0.5"))
    sort.assert_clean(0)
    (source / "p000.png").write_bytes(b"someone else's file")  # blocks putting p000 back
    blocked = cli("undo", run_folder(sort))
    blocked.assert_clean(1)
    assert "p000.png" in blocked.stderr, blocked.describe()
    (source / "p000.png").unlink()
    retried = cli("undo", run_folder(sort))
    retried.assert_clean(0)
    assert "restored 1" in retried.stdout, retried.describe()
    assert files_under(source) == {name.encode(): digest for name, digest in originals.items()}
    assert files_under(out / "keep") == {}


# ================================================================ 5, 6: hangs and memory


def test_a_fifo_and_a_device_named_like_pictures_are_reported_not_read(child, model, tmp_path):
    source, out = tmp_path / "src", tmp_path / "O"
    originals = make_pictures(source, 3)
    os.mkfifo(source / "x.jpg")
    try:
        os.mknod(source / "zero.jpg", stat.S_IFCHR | 0o644, os.makedev(1, 5))  # /dev/zero
        specials = 2
    except OSError:  # no CAP_MKNOD: the list below still names /dev/zero
        specials = 1
    listing = tmp_path / "list.txt"
    listing.write_text(f"{source / 'p000.png'}\n{source / 'x.jpg'}\n/dev/zero\n")
    folder_sort = child(*sort_arguments(source, out, model, "--confidence", "0.5"), memory_limit_mb=3000)
    folder_sort.assert_clean(0)
    assert pictures_line(folder_sort).startswith(f"{3 + specials} pictures: 3 keep, 0 review, 0 drop, "
                                                 f"{specials} unreadable"), folder_sort.describe()
    list_sort = child(*sort_arguments(listing, tmp_path / "O2", model, "--confidence", "0.5"),
                      memory_limit_mb=3000)
    list_sort.assert_clean(0)
    assert pictures_line(list_sort).startswith("3 pictures: 1 keep, 0 review, 0 drop, 2 unreadable"), \
        list_sort.describe()
    assert "not a regular file" in json.dumps(summary_of(list_sort)["errors"]), summary_of(list_sort)["errors"]
    assert_each_once(originals.values(), out / "keep")


def test_a_huge_file_is_refused_before_it_is_read(tmp_path, child, model, baseline_peak_mb):
    source, out = tmp_path / "src", tmp_path / "O"
    make_pictures(source, 2)
    with open(source / "huge.png", "wb") as handle:
        handle.write(colour_picture(RED, "PNG"))
        handle.truncate(2 * 2**30)  # 2 GiB, sparse: costs no disk
    sort = child(*sort_arguments(source, out, model, "--confidence", "0.5"), memory_limit_mb=baseline_peak_mb + 1000)
    sort.assert_clean(0)
    assert pictures_line(sort).startswith("3 pictures: 2 keep, 0 review, 0 drop, 1 unreadable"), sort.describe()
    assert sort.peak_mb < baseline_peak_mb + 200, (sort.peak_mb, baseline_peak_mb)
    assert "too large" in json.dumps(summary_of(sort)["errors"])


def test_zip_members_of_zeros_keep_memory_bounded(tmp_path, child, model, baseline_peak_mb):
    """Case 6: four members of 300 MB of zeros (a 1 MB zip) must not be held in memory."""
    archive, out = tmp_path / "zeros.zip", tmp_path / "O"
    block = bytes(2**20)
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as handle:
        handle.writestr("first.png", colour_picture(RED, "PNG"))
        for index in range(4):
            with handle.open(f"zeros{index}.png", "w", force_zip64=True) as member:
                for _ in range(300):
                    member.write(block)
        handle.writestr("last.png", colour_picture(RED, "PNG", size=(33, 33)))
    assert archive.stat().st_size < 3 * 2**20
    sort = child(*sort_arguments(archive, out, model, "--confidence", "0.5"), memory_limit_mb=baseline_peak_mb + 1000)
    sort.assert_clean(0)
    assert pictures_line(sort).startswith("6 pictures: 2 keep, 0 review, 0 drop, 4 unreadable"), sort.describe()
    assert sort.peak_mb < baseline_peak_mb + 200, (sort.peak_mb, baseline_peak_mb)


# ================================================================ 7: crashes


def test_a_list_naming_the_same_path_twice_sorts_it_once(tmp_path, cli, model):
    source, out = tmp_path / "src", tmp_path / "O"
    originals = make_pictures(source, 2)
    listing = tmp_path / "twice.txt"
    listing.write_text(f"{source / 'p000.png'}\n{source / 'p001.png'}\nsrc/p000.png\n{source / 'p000.png'}\n")
    sort = cli(*sort_arguments(listing, out, model, "--confidence", "0.5", "--action", "move"))
    sort.assert_clean(0)
    assert_each_once(originals.values(), source, out / "keep")
    assert files_under(source) == {}
    cli("undo", run_folder(sort)).assert_clean(0)
    assert files_under(source) == {name.encode(): digest for name, digest in originals.items()}


def test_out_pointing_at_a_file_is_refused(tmp_path, cli, model):
    make_pictures(tmp_path / "src", 2)
    (tmp_path / "O").write_text("a file, not a folder")
    sort = cli(*sort_arguments(tmp_path / "src", tmp_path / "O", model))
    sort.assert_clean(2)
    assert "error" in sort.stderr and str(tmp_path / "O") in sort.stderr, sort.describe()
    assert (tmp_path / "O").read_text() == "a file, not a folder"


def test_an_out_the_user_cannot_write_is_a_clear_error(tmp_path, child, model):
    make_pictures(tmp_path / "src", 2)
    (tmp_path / "O").mkdir(mode=0o555)
    try:
        sort = child(*sort_arguments(tmp_path / "src", tmp_path / "O", model), unprivileged=True)
    finally:
        (tmp_path / "O").chmod(0o755)
    sort.assert_clean(1, 2)
    assert "error" in sort.stderr and "ermission denied" in sort.stderr and str(tmp_path / "O") in sort.stderr, \
        sort.describe()
    assert list((tmp_path / "O").iterdir()) == []


def _cli_command(params_file: Path, *arguments) -> list[str]:
    return [sys.executable, "-m", "mona_pipeline.cli", "--params", str(params_file), *map(str, arguments)]


@needs_userns
def test_a_read_only_out_is_a_clear_error(tmp_path, params_file, model):
    make_pictures(tmp_path / "src", 2)
    out = tmp_path / "O"
    results = on_small_disk(tmp_path, out, [
        {"mount": {"size": "1m", "ro": True}},
        {"run": _cli_command(params_file, *sort_arguments(tmp_path / "src", out, model))}])
    sort = Outcome(results[1]["code"], results[1]["stdout"], results[1]["stderr"])
    sort.assert_clean(1, 2)
    assert "error" in sort.stderr and "ead-only file system" in sort.stderr, sort.describe()


def _noisy_pictures(folder: Path, count: int) -> dict[str, str]:
    """Pictures of about 100 KB each (noise does not compress); grey on average: kept at confidence 0."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    made, generator = {}, np.random.default_rng(0)
    for index in range(count):
        buffer = io.BytesIO()
        Image.fromarray(generator.integers(0, 256, (180, 180, 3), dtype=np.uint8)).save(buffer, "PNG")
        (folder / f"n{index:03d}.png").write_bytes(buffer.getvalue())
        made[f"n{index:03d}.png"] = sha(buffer.getvalue())
    return made


@needs_userns
def test_a_full_disk_stops_cleanly_a_rerun_finishes_and_undo_removes_everything(tmp_path, params_file, model):
    """Case 7 and 4: disk full half way through a copy; then more space and the same command; then undo."""
    source, out = tmp_path / "src", tmp_path / "O"
    originals = _noisy_pictures(source, 60)
    sort = _cli_command(params_file, *sort_arguments(source, out, model, "--confidence", "0", "--run", "full"))
    undo = _cli_command(params_file, "undo", out / "runs" / "full")
    results = on_small_disk(tmp_path, out, [
        {"mount": {"size": "3m"}}, {"run": sort}, {"census": True},
        {"resize": "64m"}, {"run": sort}, {"census": True}, {"run": undo}, {"census": True}])
    full, after_full, rerun, after_rerun, undone, after_undo = (results[i] for i in (1, 2, 4, 5, 6, 7))
    full = Outcome(full["code"], full["stdout"], full["stderr"])
    full.assert_clean(1)
    assert "No space left on device" in full.stderr and "run the same command again" in full.stderr, \
        full.describe()
    kept = [h for path, h in after_full["census"].items() if path.startswith("keep/")]
    assert 0 < len(kept) < 60 and len(set(kept)) == len(kept), after_full["census"].keys()
    rerun = Outcome(rerun["code"], rerun["stdout"], rerun["stderr"])
    rerun.assert_clean(0)
    assert pictures_line(rerun).startswith("60 pictures: 60 keep"), rerun.describe()
    kept = [h for path, h in after_rerun["census"].items() if path.startswith("keep/")]
    assert sorted(kept) == sorted(originals.values())
    assert not [path for path in after_rerun["census"] if path.endswith(".partial")]
    Outcome(undone["code"], undone["stdout"], undone["stderr"]).assert_clean(0)
    assert [path for path in after_undo["census"] if not path.startswith("runs/")] == []
    assert files_under(source) == {name.encode(): digest for name, digest in originals.items()}


@needs_userns
def test_undo_right_after_a_full_disk_removes_every_copy_and_partial(tmp_path, params_file, model):
    source, out = tmp_path / "src", tmp_path / "O"
    originals = _noisy_pictures(source, 60)
    results = on_small_disk(tmp_path, out, [
        {"mount": {"size": "3m"}},
        {"run": _cli_command(params_file, *sort_arguments(source, out, model, "--confidence", "0", "--run", "f"))},
        {"census": True},
        {"run": _cli_command(params_file, "undo", out / "runs" / "f")}, {"census": True}])
    Outcome(results[1]["code"], results[1]["stdout"], results[1]["stderr"]).assert_clean(1)
    assert any(path.startswith("keep/") for path in results[2]["census"])
    undo = Outcome(results[3]["code"], results[3]["stdout"], results[3]["stderr"])
    undo.assert_clean(0)
    assert [path for path in results[4]["census"] if not path.startswith("runs/")] == [], undo.describe()
    assert files_under(source) == {name.encode(): digest for name, digest in originals.items()}


def test_a_bad_params_file_is_one_clear_line_for_the_stage_flows(tmp_path, params_file):
    """Case 7's last item: `python -m flows.build` showed the params error inside a traceback (now flows.<stage>)."""
    bad = tmp_path / "params.yaml"
    bad.write_text(params_file.read_text().replace("batch_size:", "batch_sise:", 1))
    ran = run_child(params_file, command=[sys.executable, "-m", "flows.ingest", "--params", str(bad)])
    ran.assert_clean(2)
    assert "error" in ran.stderr and "batch_sise" in ran.stderr, ran.describe()


# ================================================================ 8, 9


@pytest.mark.parametrize("command", [["purge", "--yes"], ["undo"]])
@pytest.mark.parametrize("what", ["missing", "empty folder", "other sqlite file", "not sqlite"])
def test_purge_and_undo_refuse_what_is_not_a_run(tmp_path, cli, command, what):
    import sqlite3

    target = tmp_path / "NOT" / "A" / "RUN"
    if what != "missing":
        target.mkdir(parents=True)
    if what == "other sqlite file":
        with sqlite3.connect(target / "journal.sqlite") as connection:
            connection.execute("CREATE TABLE notes (text TEXT)")
    if what == "not sqlite":
        (target / "journal.sqlite").write_bytes(b"not a database" * 10)
    before = files_under(tmp_path)
    outcome = cli(command[0], target, *command[1:])
    outcome.assert_clean(2)
    assert "not a sort run" in outcome.stderr and str(target) in outcome.stderr, outcome.describe()
    assert files_under(tmp_path) == before
    assert target.exists() == (what != "missing")


@pytest.mark.parametrize("action", ["copy", "move", "link"])
def test_names_of_up_to_255_bytes_are_sorted_and_undone(tmp_path, cli, model, action):
    source, out = tmp_path / "src", tmp_path / "O"
    source.mkdir()
    originals = {}
    for index, length in enumerate((246, 247, 251)):  # + ".png": 250, 251 and 255 bytes
        name = "r" * length + ".png"
        data = colour_picture(RED, "PNG", size=(30 + index, 30))
        (source / name).write_bytes(data)
        originals[name] = sha(data)
    sort = cli(*sort_arguments(source, out, model, "--confidence", "0.5", "--action", action))
    sort.assert_clean(0)
    assert "failed" not in sort.text, sort.describe()
    kept = sorted(p.name for p in (out / "keep").iterdir())
    assert kept == sorted(originals)
    if action != "link":
        assert_each_once(originals.values(), *([out / "keep"] if action == "copy" else [source, out / "keep"]))
    cli("undo", run_folder(sort)).assert_clean(0)
    assert list((out / "keep").iterdir()) == []
    assert files_under(source) == {name.encode(): digest for name, digest in originals.items()}


# ================================================================ hostile input that was already handled


def _hostile_zip(path: Path) -> list[str]:
    members = {"../../escape.png": RED, "/etc/absolute.png": RED, "C:\\windows\\drive.png": RED,
               "dir/same.png": RED, "dir/./../dir/same.png": RED, "blue.png": BLUE}
    contents = []
    with zipfile.ZipFile(path, "w") as archive:
        for index, (name, colour) in enumerate(members.items()):
            data = colour_picture(colour, "PNG", size=(30 + index, 30))
            archive.writestr(name, data)
            contents.append(sha(data))
        archive.writestr("broken.png", b"\x89PNG\r\n\x1a\nbroken")
    return contents


def _hostile_tar(path: Path) -> list[str]:
    contents = []
    with tarfile.open(path, "w:gz") as archive:
        for index, name in enumerate(["../../up.png", "/abs.png", "ok.png"]):
            data = colour_picture(RED, "PNG", size=(30 + index, 30))
            member = tarfile.TarInfo(name)
            member.size = len(data)
            archive.addfile(member, io.BytesIO(data))
            contents.append(sha(data))
        for kind, target in ((tarfile.SYMTYPE, "/etc/passwd"), (tarfile.LNKTYPE, "ok.png")):
            member = tarfile.TarInfo(f"link{kind.decode()}.png")
            member.type, member.linkname = kind, target
            archive.addfile(member)
        device = tarfile.TarInfo("zero.png")
        device.type, device.devmajor, device.devminor = tarfile.CHRTYPE, 1, 5
        archive.addfile(device)
    return contents


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_hostile_archive_member_names_stay_inside_out(tmp_path, cli, model, kind):
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    archive, out = sandbox / f"hostile.{kind}", sandbox / "deep" / "O"
    contents = (_hostile_zip if kind == "zip" else _hostile_tar)(archive)
    before = outside(sandbox, out)
    sort = cli(*sort_arguments(archive, out, model, "--confidence", "0.5"))
    sort.assert_clean(0)
    assert outside(sandbox, out) == before  # nothing written beside OUT, the archive unchanged
    red = [h for h in contents if h in hashes(out / "keep")]
    assert len(red) == len(contents) - (kind == "zip")  # every red member kept once, the blue one dropped
    assert_each_once(red, out / "keep")


def test_a_truncated_archive_is_reported_and_what_came_before_is_sorted(tmp_path, cli, model):
    archive, out = tmp_path / "cut.tar.gz", tmp_path / "O"
    with tarfile.open(archive, "w:gz") as handle:
        for index in range(6):
            data = picture_bytes("PNG", size=(200, 200), seed=index)  # noise: the archive stays big
            member = tarfile.TarInfo(f"p{index}.png")
            member.size = len(data)
            handle.addfile(member, io.BytesIO(data))
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    sort = cli(*sort_arguments(archive, out, model, "--confidence", "0"))
    sort.assert_clean(1)
    assert "damaged" in sort.text, sort.describe()
    assert 0 < len(files_under(out / "keep")) < 6


def _claims_to_be_huge() -> bytes:
    """A small PNG whose header says 30000 x 30000 pixels (a decompression bomb's first line)."""
    import struct
    import zlib

    data = bytearray(colour_picture(RED, "PNG"))
    header = struct.pack(">II", 30000, 30000) + bytes(data[24:29])  # IHDR: width, height, depth...
    data[16:29] = header
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + header))
    return bytes(data)


def test_broken_pictures_are_reported_and_never_touched(tmp_path, cli, model):
    source, out = tmp_path / "src", tmp_path / "O"
    source.mkdir()
    broken = {"empty.jpg": b"", "truncated.jpg": colour_picture(RED, size=(300, 300))[:300],
              "garbage.png": b"not a picture at all" * 10, "bomb.png": _claims_to_be_huge(),
              "text.gif": b"GIF89a" + b"\x00" * 3}
    for name, data in broken.items():
        (source / name).write_bytes(data)
    good = make_pictures(source, 2)
    before = files_under(source)
    sort = cli(*sort_arguments(source, out, model, "--confidence", "0.5", "--action", "move"))
    sort.assert_clean(0)
    assert pictures_line(sort).startswith("7 pictures: 2 keep, 0 review, 0 drop, 5 unreadable"), sort.describe()
    assert files_under(source) == {name.encode(): sha(data) for name, data in broken.items()}
    assert_each_once(good.values(), out / "keep")
    cli("undo", run_folder(sort)).assert_clean(0)
    assert files_under(source) == before


def test_links_loops_hidden_files_and_odd_names_in_a_folder(tmp_path, cli, model):
    sandbox = tmp_path / "sandbox"
    source, out = sandbox / "src", sandbox / "O"
    odd = {"with space.png": RED, "new\nline.png": RED, "-dash.png": RED, "ünïcødé.png": RED, "a/b/c/d/e.png": RED,
           "same/x.png": RED, "other/x.png": BLUE, "wrong_extension.jpg": RED}
    originals = {}
    for index, (name, colour) in enumerate(odd.items()):
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        data = colour_picture(colour, "PNG", size=(30 + index, 30))
        (source / name).write_bytes(data)
        originals[name] = sha(data)
    (sandbox / "secret.png").write_bytes(colour_picture(RED, "PNG", size=(99, 30)))
    (source / "outside.png").symlink_to(sandbox / "secret.png")
    (source / "a" / "loop").symlink_to(source, target_is_directory=True)
    (source / ".hidden.png").write_bytes(colour_picture(RED, "PNG", size=(98, 30)))
    before = outside(sandbox, out)
    sort = cli(*sort_arguments(source, out, model, "--confidence", "0.5", "--action", "move"))
    sort.assert_clean(0)
    assert pictures_line(sort).startswith("8 pictures: 7 keep, 0 review, 1 drop"), sort.describe()
    assert (sandbox / "secret.png").is_file() and (source / ".hidden.png").is_file()
    assert_each_once(originals.values(), source, out / "keep")
    cli("undo", run_folder(sort)).assert_clean(0)
    assert outside(sandbox, out) == before


def test_a_different_picture_already_at_the_destination_is_never_overwritten(tmp_path, cli, model):
    source, out = tmp_path / "src", tmp_path / "O"
    originals = make_pictures(source, 2)
    (out / "keep").mkdir(parents=True)
    theirs = colour_picture(BLUE, "PNG")
    (out / "keep" / "p000.png").write_bytes(theirs)
    sort = cli(*sort_arguments(source, out, model, "--confidence", "0.5", "--action", "move"))
    sort.assert_clean(0)
    assert (out / "keep" / "p000.png").read_bytes() == theirs
    assert_each_once([*originals.values(), sha(theirs)], source, out / "keep")
    cli("undo", run_folder(sort)).assert_clean(0)
    assert files_under(out / "keep") == {b"p000.png": sha(theirs)}
    assert files_under(source) == {name.encode(): digest for name, digest in originals.items()}


@pytest.mark.parametrize("source_kind", ["zip", "tar"])
@pytest.mark.parametrize("action", ["move", "delete", "link"])
def test_changing_actions_on_archives_are_refused(tmp_path, cli, model, source_kind, action):
    archive = tmp_path / f"a.{source_kind}"
    if source_kind == "zip":
        _zip_of_pictures(archive, 2)
    else:
        make_pictures(tmp_path / "src", 1)
        with tarfile.open(archive, "w") as handle:
            handle.add(tmp_path / "src" / "p000.png", "p000.png")
    before = archive.read_bytes()
    sort = cli(*sort_arguments(archive, tmp_path / "O", model, "--action", action))
    sort.assert_clean(2)
    assert "copy" in sort.stderr and action in sort.stderr, sort.describe()
    assert archive.read_bytes() == before


@pytest.mark.parametrize("source", ["missing-folder", "notes.doc", "fake.zip", "fake.tar.gz"])
def test_unknown_missing_or_fake_sources_are_named(tmp_path, cli, model, source):
    if source != "missing-folder":
        (tmp_path / source).write_text("not what the name says")
    sort = cli(*sort_arguments(tmp_path / source, tmp_path / "O", model))
    sort.assert_clean(2)
    assert source in sort.stderr, sort.describe()


def test_a_list_with_missing_paths_reports_them(tmp_path, cli, model):
    source, out = tmp_path / "src", tmp_path / "O"
    originals = make_pictures(source, 2)
    listing = tmp_path / "list.txt"
    listing.write_text(f"# pictures\n{source / 'p000.png'}\n\n{source / 'gone.png'}\nsrc/p001.png\n")
    sort = cli(*sort_arguments(listing, out, model, "--confidence", "0.5"))
    sort.assert_clean(0)
    assert pictures_line(sort).startswith("3 pictures: 2 keep, 0 review, 0 drop, 1 unreadable"), sort.describe()
    assert_each_once(originals.values(), out / "keep")


def test_an_empty_source_sorts_nothing_and_says_so(tmp_path, cli, model):
    (tmp_path / "src").mkdir()
    sort = cli(*sort_arguments(tmp_path / "src", tmp_path / "O", model))
    sort.assert_clean(0)
    assert pictures_line(sort).startswith("0 pictures"), sort.describe()


def test_undo_twice_and_purge_twice_change_nothing_the_second_time(tmp_path, cli, model):
    source, out = tmp_path / "src", tmp_path / "O"
    originals = make_pictures(source, 4, colours=(RED, BLUE))
    sort = cli(*sort_arguments(source, out, model, "--confidence", "0.5", "--action", "delete"))
    sort.assert_clean(0)
    assert_each_once(originals.values(), source, run_folder(sort) / "trash")
    cli("undo", run_folder(sort)).assert_clean(0)
    again = cli("undo", run_folder(sort))
    again.assert_clean(0)
    assert "restored 0" in again.stdout, again.describe()
    purge = cli("purge", run_folder(sort), "--yes")
    purge.assert_clean(0)
    assert "deleted 0" in purge.stdout, purge.describe()
    assert files_under(source) == {name.encode(): digest for name, digest in originals.items()}
