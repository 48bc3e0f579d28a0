"""One process per run (issue 22, LOST and SILENT): two real processes on one run, the first slowed down.

A scheduled sort and a manual one of the same inbox, two undos of one run, an undo during the sort:
the second process must refuse at once (exit 2, naming the holder's process id) and, after both,
every picture is exactly once where it belongs. The slow disk is the first child's file operations
under a folder made to sleep (instrumented_cli.py: MONA_DELAY_UNDER, MONA_DELAY_SECONDS); OUT on
another file system (a move is then a copy, a check and a removal) is /dev/shm where it is a file
system of its own.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest

from tests.sort.harness import Outcome, assert_each_once, files_under, make_pictures, run_child, start_child

SHM = Path("/dev/shm")


@pytest.fixture
def other_disk(tmp_path) -> Path:
    """A folder on another file system than tmp_path (moves across it are copy + remove)."""
    if not SHM.is_dir() or not os.access(SHM, os.W_OK) or SHM.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("needs /dev/shm as a file system apart from the temporary folder")
    folder = SHM / f"mona-test-{os.getpid()}-{time.monotonic_ns()}"
    folder.mkdir()
    yield folder
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


def move_sort(source: Path, out: Path, model: Path, *more) -> list:
    return ["sort", source, "--out", out, "--model", model, "--action", "move", "--confidence", "0",
            "--batch-size", "8", "--tiling", "off", "--quiet", *more]


def slowed(under: Path, seconds: float = 0.3) -> dict:
    return {"MONA_DELAY_UNDER": str(under), "MONA_DELAY_SECONDS": str(seconds)}


def wait_for(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the first process never got that far"
        time.sleep(0.1)


def refused_by(outcome: Outcome, first) -> None:
    """The second process refused at once, saying which process holds the run."""
    outcome.assert_clean(2)
    assert re.search(rf"in use by process {first.pid}\b", outcome.stderr), outcome.describe()


def test_the_same_move_sort_started_twice_refuses_the_second_and_loses_nothing(tmp_path, other_disk, params_file,
                                                                              model):
    source, out = tmp_path / "inbox", other_disk / "O"
    originals = make_pictures(source, 30)
    first = start_child(params_file, *move_sort(source, out, model), environment=slowed(source))
    wait_for(lambda: (out / "keep").is_dir() and any((out / "keep").iterdir()))
    second = run_child(params_file, *move_sort(source, out, model))
    refused_by(second, first)
    first.finish().assert_clean(0)
    assert_each_once(originals.values(), source, out / "keep")
    assert len(files_under(out / "keep")) == 30


def test_two_undos_of_one_move_run_at_once_refuse_the_second_and_restore_everything(tmp_path, other_disk, params_file,
                                                                                   model):
    source, out = tmp_path / "inbox", other_disk / "O"
    originals = make_pictures(source, 20)
    run_child(params_file, *move_sort(source, out, model, "--run", "night")).assert_clean(0)
    run_dir = out / "runs" / "night"
    first = start_child(params_file, "undo", run_dir, environment=slowed(out / "keep"))
    wait_for(lambda: len(files_under(source)) > 0)
    second = run_child(params_file, "undo", run_dir)
    refused_by(second, first)
    first.finish().assert_clean(0)
    assert files_under(source) == {name.encode(): digest for name, digest in originals.items()}
    assert files_under(out / "keep") == {}


def test_an_undo_during_the_runs_sort_is_refused_and_a_later_undo_restores_all(tmp_path, params_file, model):
    source, out = tmp_path / "inbox", tmp_path / "O"
    originals = make_pictures(source, 24)
    sort = move_sort(source, out, model, "--run", "busy")
    first = start_child(params_file, *sort, environment=slowed(source, 0.2))
    wait_for(lambda: (out / "keep").is_dir() and any((out / "keep").iterdir()))
    undo = run_child(params_file, "undo", out / "runs" / "busy")
    refused_by(undo, first)
    first.finish().assert_clean(0)
    later = run_child(params_file, "undo", out / "runs" / "busy")
    later.assert_clean(0)
    assert "restored 24" in later.stdout, later.describe()
    assert files_under(source) == {name.encode(): digest for name, digest in originals.items()}


@pytest.mark.parametrize("action", ["move", "delete"])
def test_two_identical_sorts_at_once_leave_one_run_that_undo_puts_back_whole(tmp_path, params_file, model, action):
    source, out = tmp_path / "inbox", tmp_path / "O"
    originals = make_pictures(source, 24)
    confidence = "0" if action == "move" else "1"  # delete: every picture dropped, into the trash
    sort = ["sort", source, "--out", out, "--model", model, "--action", action, "--confidence", confidence,
            "--batch-size", "8", "--tiling", "off", "--quiet", "--run", "twice"]
    hold = tmp_path / "hold"  # the first waits at its first file operation until the second has tried
    hold.touch()
    first = start_child(params_file, *sort, environment={**slowed(source, 0.2), "MONA_HOLD_WHILE": str(hold)})
    wait_for(lambda: (out / "runs" / "twice" / "journal.sqlite").is_file())
    second = run_child(params_file, *sort)
    hold.unlink()
    refused_by(second, first)
    first.finish().assert_clean(0)
    undo = run_child(params_file, "undo", out / "runs" / "twice")
    undo.assert_clean(0)
    assert "restored 24" in undo.stdout, undo.describe()
    assert files_under(source) == {name.encode(): digest for name, digest in originals.items()}
    assert files_under(out / "runs" / "twice" / "trash") == {}


def test_a_flow_run_holds_its_run_against_the_command_line(tmp_path, params_file, model):
    """The Prefect flow (a served deployment or a worker runs the same code) and the CLI exclude each other."""
    source, out = tmp_path / "inbox", tmp_path / "O"
    originals = make_pictures(source, 24)
    flow = start_child(params_file, source, "--out", out, "--model", model, "--action", "move", "--confidence", "0",
                       "--batch-size", "8", "--tiling", "off", "--run", "nightly",
                       environment={**slowed(source, 0.6), "MONA_ENTRY": "flows.sort", "PREFECT_HOME":
                                    str(tmp_path / "prefect-home")})
    wait_for(lambda: (out / "keep").is_dir() and any((out / "keep").iterdir()), timeout=180)
    cli = run_child(params_file, *move_sort(source, out, model, "--run", "nightly"))
    refused_by(cli, flow)
    flow.finish(timeout=300).assert_clean(0)
    assert_each_once(originals.values(), out / "keep")
