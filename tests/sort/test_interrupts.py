"""Ctrl-C stops (issue 22, CRASH): SIGINT or SIGTERM at random points of move runs and undos.

Each interrupt must end the command with 130 (SIGINT) or 143 (SIGTERM) and the message, never a
traceback, a segfault or a swallowed signal (a run that went on to the end); the same command then
resumes, and undo puts every picture back. Most interrupts are sent to this process (the command line
runs in it, TensorFlow loaded once: fast); a few go to real child processes, whose exit code is what a
shell sees.

    MONA_INTERRUPT_SEED=123 pytest tests/sort/test_interrupts.py -s     # replay one draw
"""

from __future__ import annotations

import os
import random
import signal
import time

import pytest

from tests.sort.harness import (BLUE, RED, assert_each_once, files_under, hashes, make_pictures, run_child,
                                start_child)

SEED = int(os.environ.get("MONA_INTERRUPT_SEED", random.SystemRandom().randrange(2**31)))


def move_sort(source, out, model, *more) -> list:
    return ["sort", source, "--out", out, "--model", model, "--action", "move", "--confidence", "0.5",
            "--batch-size", "4", "--tiling", "always", "--quiet", "--run", "night", *more]


def signal_at_call(module, name: str, call: int, number: int):
    """Wrap module.name so that its `call`-th call first sends `number` to this process."""
    original, calls = getattr(module, name), [0]

    def wrapped(*arguments, **keywords):
        calls[0] += 1
        if calls[0] == call:
            os.kill(os.getpid(), number)
        return original(*arguments, **keywords)

    return wrapped


@pytest.fixture
def signals_caught():
    """While a test signals its own process: a signal that lands outside the command line (before its handler
    is in place, or after the sort ended) is recorded instead of ending pytest."""
    caught = []
    previous = {number: signal.signal(number, lambda received, frame: caught.append(received))
                for number in (signal.SIGINT, signal.SIGTERM)}
    yield caught
    for number, handler in previous.items():
        signal.signal(number, handler)


def test_twenty_interrupts_at_random_points_stop_cleanly_and_lose_nothing(tmp_path, cli, model, signals_caught,
                                                                          monkeypatch):
    """The signal lands at a random picture read or file operation of a move run (tiles on)."""
    from mona_pipeline.sort import files, sources

    print(f"MONA_INTERRUPT_SEED={SEED}")
    draw = random.Random(SEED)
    for attempt in range(20):
        source, out = tmp_path / f"inbox{attempt}", tmp_path / f"O{attempt}"
        originals = make_pictures(source, 16, colours=(RED, BLUE))
        number = draw.choice((signal.SIGINT, signal.SIGTERM))
        module, name, call = draw.choice([(sources, "read_regular_file", draw.randint(1, 16)),
                                          (files, "perform", draw.randint(1, 8))])
        with monkeypatch.context() as patched:
            patched.setattr(module, name, signal_at_call(module, name, call, number))
            outcome = cli(*move_sort(source, out, model))
        where = f"attempt {attempt}: {signal.Signals(number).name} at {name} call {call}"
        assert outcome.code == 128 + number, f"{where}: {outcome.describe()}"  # not 0: never swallowed
        assert "Traceback" not in outcome.text and "interrupted" in outcome.stderr, f"{where}: {outcome.describe()}"
        assert "run the same command again" in outcome.stderr.lower(), outcome.describe()
        assert_each_once(originals.values(), source, out / "keep")  # nothing lost at the interrupt
        assert len(files_under(out / "keep")) <= call, f"{where}: the run went on after the signal"
        again = cli(*move_sort(source, out, model))
        again.assert_clean(0)
        kept = [digest for name, digest in originals.items() if int(name[1:4]) % 2 == 0]
        assert sorted(hashes(out / "keep").elements()) == sorted(kept), f"attempt {attempt}: {again.describe()}"
        cli("undo", out / "runs" / "night").assert_clean(0)
        assert files_under(source) == {picture.encode(): digest for picture, digest in originals.items()}
    assert not signals_caught, "a signal landed outside the command line's handler"


@pytest.mark.parametrize("number", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_to_a_real_sort_process_exits_with_its_code_and_a_rerun_resumes(tmp_path, params_file, model,
                                                                               number):
    source, out = tmp_path / "inbox", tmp_path / "O"
    originals = make_pictures(source, 24, colours=(RED, BLUE))
    running = start_child(params_file, *move_sort(source, out, model),
                          environment={"MONA_DELAY_UNDER": str(source), "MONA_DELAY_SECONDS": "0.2"})
    deadline = time.monotonic() + 120
    while not ((out / "keep").is_dir() and any((out / "keep").iterdir())):
        assert time.monotonic() < deadline and running.process.poll() is None, running.finish().describe()
        time.sleep(0.05)
    running.process.send_signal(number)
    outcome = running.finish()
    outcome.assert_clean(128 + number)  # not 0 (swallowed), not -11 (a segfault), no traceback
    assert "interrupted" in outcome.stderr, outcome.describe()
    assert 0 < len(files_under(out / "keep")) < 12, "the run went on after the signal"
    run_child(params_file, *move_sort(source, out, model)).assert_clean(0)
    assert len(files_under(out / "keep")) == 12
    run_child(params_file, "undo", out / "runs" / "night").assert_clean(0)
    assert files_under(source) == {name.encode(): digest for name, digest in originals.items()}


def test_an_interrupted_undo_stops_cleanly_and_the_next_undo_finishes(tmp_path, params_file, model):
    source, out = tmp_path / "inbox", tmp_path / "O"
    originals = make_pictures(source, 16)
    run_child(params_file, *move_sort(source, out, model, "--confidence", "0")).assert_clean(0)
    running = start_child(params_file, "undo", out / "runs" / "night",
                          environment={"MONA_DELAY_UNDER": str(out / "keep"), "MONA_DELAY_SECONDS": "0.2"})
    deadline = time.monotonic() + 120
    while not files_under(source):
        assert time.monotonic() < deadline and running.process.poll() is None, running.finish().describe()
        time.sleep(0.05)
    running.process.send_signal(signal.SIGINT)
    outcome = running.finish()
    outcome.assert_clean(130)
    assert "interrupted" in outcome.stderr, outcome.describe()
    assert_each_once(originals.values(), source, out / "keep")
    run_child(params_file, "undo", out / "runs" / "night").assert_clean(0)
    assert files_under(source) == {name.encode(): digest for name, digest in originals.items()}
