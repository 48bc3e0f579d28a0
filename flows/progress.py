"""A running sort's progress artifact: pictures done so far, updated at most once a second.

    with tracked_progress(artifact_id, total) as progress:   # the flow
        ...
    live_progress(artifact_id).batch_done(64)                # a chunk on the flow's threads
"""

import contextlib
import threading
import time
import uuid
from typing import Iterator

from prefect.artifacts import update_progress_artifact


class LiveProgress:
    """Pictures done so far, shown in the run's progress artifact at most once a second.

    Chunks on the flow's own threads count each batch as it finishes; chunks on Dask
    workers (other processes) cannot reach this object and are counted when they return.
    """

    def __init__(self, artifact_id: uuid.UUID, total: int | None):
        """`total` None: not known until the end (a tar read in one pass); the artifact stays at 0 until then."""
        self.artifact_id, self.total = artifact_id, max(1, total) if total is not None else None
        self.done, self.shown_at, self.counted_batches = 0, 0.0, False
        self.lock = threading.Lock()

    def batch_done(self, pictures: int) -> None:
        self.counted_batches = True
        self._advance(pictures)

    def chunk_done(self, pictures: int) -> None:
        if not self.counted_batches:  # a chunk that ran elsewhere
            self._advance(pictures)

    def _advance(self, pictures: int) -> None:
        with self.lock:
            self.done += pictures
            if self.total is None or time.monotonic() - self.shown_at < 1.0 and self.done < self.total:
                return
            self.shown_at = time.monotonic()
            update_progress_artifact(self.artifact_id, min(100.0, 100.0 * self.done / self.total))


_LIVE_PROGRESS: dict[uuid.UUID, LiveProgress] = {}  # this process's running sorts, by progress artifact


# The registry is reached only through these functions, never named by a flow's or a task's code, so that
# nothing pickled for a Dask worker carries it (or its locks) along.
@contextlib.contextmanager
def tracked_progress(artifact_id: uuid.UUID, total: int | None) -> Iterator[LiveProgress]:
    progress = _LIVE_PROGRESS[artifact_id] = LiveProgress(artifact_id, total)
    try:
        yield progress
    finally:
        _LIVE_PROGRESS.pop(artifact_id, None)


def live_progress(progress_id: uuid.UUID | None) -> LiveProgress | None:
    """The running sort's progress when it lives in this process (threads), else None (a Dask worker)."""
    return _LIVE_PROGRESS.get(progress_id)
