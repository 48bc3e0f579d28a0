"""Why a sort stops before its end: a signal (Ctrl-C, SIGTERM) or a disk that cannot take more.

Ctrl-C and SIGTERM stop a sort or an undo at the next file-operation boundary, never in the middle.

    with stop_on_signals() as stop:         # the command line, around one sort or undo
        sort_source(request, stop=stop)     # raises Interrupted once a signal arrived and the journal is consistent

A signal only sets a flag; the run checks it between file operations and between pictures
it feeds to the model, so TensorFlow's input pipeline ends as it would at the end of the
source (a KeyboardInterrupt raised inside it was swallowed, or ended in a traceback or a
segfault). The command line then exits 130 (SIGINT) or 143 (SIGTERM), and the same command
resumes.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sqlite3
import threading
from pathlib import Path
from typing import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(Exception):
    """The run stopped because of a signal; what was done is journaled and the same command resumes.

    Attributes:
        exit_code: 128 + the signal's number (130 for SIGINT, 143 for SIGTERM), as a shell reports it.
    """

    def __init__(self, message: str, signal_number: int):
        super().__init__(message)
        self.exit_code = 128 + signal_number


class StopRequest:
    """Set by a signal (or by a caller), read by the run between file operations."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signal_number = signal.SIGINT

    def request(self, signal_number: int = signal.SIGINT) -> None:
        self.signal_number = signal_number
        self._event.set()

    @property
    def requested(self) -> bool:
        return self._event.is_set()

    def check(self, done: str) -> None:
        """Raise Interrupted when a stop was requested.

        Args:
            done: what was done so far, for the message (`12 pictures sorted this session`).
        """
        if self.requested:
            name = signal.Signals(self.signal_number).name
            raise Interrupted(f"interrupted ({name}): {done}; what was done is in the journal. Run the same command "
                              f"again to resume", self.signal_number)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[StopRequest]:
    """SIGINT and SIGTERM set the returned request instead of raising, for the block (main thread only)."""
    stop = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return
    previous = {number: signal.signal(number, lambda received, frame: stop.request(received)) for number in SIGNALS}
    try:
        yield stop
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


class SortStopped(Exception):
    """The run had to stop (a full or read-only disk under OUT, a journal that cannot be written).
    What was done is journaled: the same command finishes the run, `mona undo` rolls it back."""


STOPPING_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO}  # no later picture would fare better


def stopping_error(error: BaseException, run_dir: Path, where: str = "") -> SortStopped | None:
    """The SortStopped for an error that must stop the whole run, or None for one that concerns one picture."""
    if isinstance(error, sqlite3.Error):
        full = getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "full" in str(error)
        reason = f"{os.strerror(errno.ENOSPC) if full else error} (the journal in {run_dir})"
    elif isinstance(error, OSError) and error.errno in STOPPING_ERRORS:
        reason = f"{error.strerror or os.strerror(error.errno)}{f' while writing {where}' if where else ''}"
    else:
        return None
    return SortStopped(f"{reason}: the sort stopped. What was done is in the journal; free some space (or make "
                       f"the output writable) and run the same command again to finish, or `mona undo {run_dir}` "
                       f"to roll it back")
