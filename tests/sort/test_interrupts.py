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
import threading
import time

import pytest

from tests.sort.harness import (BLUE, RED, assert_each_once, files_under, hashes, make_pictures, run_child,
                                start_child)

SEED = int(os.environ.get("MONA_INTERRUPT_SEED", random.SystemRandom().randrange(2**31)))


def move_sort(source, out, model, *more) -> list:
    return ["sort", source, "--out", out, "--model", model, "--action", "move", "--confidence", "0.5",
            "--batch-size", "4", "--tiling", "always", "--quiet", "--run", "night", *more]


def interrupt_this_process_after(seconds: float, number: int) -> threading.Timer:
    timer = threading.Timer(seconds, os.kill, (os.getpid(), number))
    timer.start()
    return timer


def test_twenty_interrupts_at_random_points_stop_cleanly_and_lose_nothing(tmp_path, cli, model):
    print(f"MONA_INTERRUPT_SEED={SEED}")
    draw = random.Random(SEED)
    interrupted = 0
    for attempt in range(20):
        source, out = tmp_path / f"inbox{attempt}", tmp_path / f"O{attempt}"
        originals = make_pictures(source, 16, colours=(RED, BLUE))
        number = draw.choice((signal.SIGINT, signal.SIGTERM))
        timer = interrupt_this_process_after(draw.uniform(0.05, 1.5), number)
        try:
            outcome = cli(*move_sort(source, out, model))
        finally:
            timer.join()  # the signal has been sent before the next step
        assert "Traceback" not in outcome.text, outcome.describe()
        if outcome.code != 0:  # the signal came while the sort ran (not after it finished)
            interrupted += 1
            assert outcome.code == 128 + number, f"attempt {attempt}: {outcome.describe()}"
            assert "interrupted" in outcome.stderr and "run the same command again" in outcome.stderr.lower(), \
                outcome.describe()
        assert_each_once(originals.values(), source, out / "keep")  # nothing lost at the interrupt
        again = cli(*move_sort(source, out, model))
        again.assert_clean(0)
        kept = [digest for name, digest in originals.items() if int(name[1:4]) % 2 == 0]
        assert sorted(hashes(out / "keep").elements()) == sorted(kept), f"attempt {attempt}: {again.describe()}"
        cli("undo", out / "runs" / "night").assert_clean(0)
        assert files_under(source) == {name.encode(): digest for name, digest in originals.items()}
    assert interrupted >= 10, f"only {interrupted} of 20 interrupts landed during a sort (seed {SEED})"


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
