"""One process per run: a sort, its recovery, an undo or a purge of a run holds the run's lock.

    with hold_run(run_dir):          # RunBusy at once when another process holds it
        ...

The lock is `fcntl.flock` on OUT/runs/<run>/lock, held for as long as the process works on
the run and released by the kernel when it exits, however it exits (a kill included), so a
lock is never left behind. The file also says who holds it (process id and command line),
for the message a second process gets. Two processes on one run are how pictures were lost:
one run's recovery finished a move the other was still making, and the other then cleaned up
the only copy. A scheduled run and a manual one of the same inbox are exactly that.

A Prefect sort holds the lock in the flow's process for the whole run; its chunk tasks (on
its threads, or on Dask workers) work under it and do not take it again.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sys
from pathlib import Path
from typing import Iterator

from mona_pipeline.errors import UserError

LOCK_NAME = "lock"


class RunBusy(UserError):
    """Another process is working on the run; the message names it."""


def _holder(handle) -> str:
    handle.seek(0)
    text = handle.read().strip()
    return text or "another process (it did not say which)"


@contextlib.contextmanager
def hold_run(run_dir: Path, doing: str = "") -> Iterator[None]:
    """Hold the run's lock for the block; refuse at once when another process holds it.

    Args:
        doing: what this process does, for the message another process would get (`sort`, `undo`, ...).
    Raises:
        RunBusy: another process holds the run (its process id and command line in the message).
        OSError: the lock file can be neither created nor opened (a read-only OUT without one).
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / LOCK_NAME
    try:
        handle = open(path, "a+", encoding="utf-8", errors="replace")
    except OSError:  # a full or read-only disk: an existing lock file still locks, opened to read
        handle = open(path, encoding="utf-8", errors="replace")
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunBusy(f"run {run_dir} is in use by {_holder(handle)}; wait for it to finish (or stop it) and "
                          f"run this again: two processes on one run could lose pictures") from None
        _say_who(handle, f"process {os.getpid()} ({doing + ': ' if doing else ''}{' '.join(sys.argv)})\n")
        try:
            yield
        finally:
            _say_who(handle, "")  # the kernel releases the lock when the file closes (or the process dies)


def holder(run_dir: Path) -> str | None:
    """Who holds the run's lock now (`mona runs`: running), or None; looks without taking it for long and
    without creating anything."""
    try:
        handle = open(run_dir / LOCK_NAME, encoding="utf-8", errors="replace")
    except OSError:
        return None  # no lock file: no process has held this run
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _holder(handle)
        fcntl.flock(handle, fcntl.LOCK_UN)
        return None


def _say_who(handle, text: str) -> None:
    """Write who holds the lock, for others' messages; best effort (a full disk still locks)."""
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(text)
        handle.flush()
    except (OSError, ValueError):
        pass
