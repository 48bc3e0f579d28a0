"""One sort run: stream pictures through the model, decide, journal, act; never lose one.

    with SortRun(request) as run:          # checks source, action and model; opens the journal
        run.recover()                      # finish what a killed run left half done
        tally = run.process(run.source.items(), progress)
        summary = run.finish(tally, seconds)

`sort_source` does exactly that (the CLI path); the Prefect flow runs `process`
per chunk in tasks and merges the tallies. Every picture is journaled before and
after its file operation (journal.py), so a killed run resumes where it stopped.
"""

from __future__ import annotations

import io
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Iterator

from PIL import Image

from mona_pipeline.images import content_hash
from mona_pipeline.inference import Scored, Scorer, score_stream
from mona_pipeline.models import load_trained
from mona_pipeline.sort import files, recovery
from mona_pipeline.sort.contact_sheet import ContactSheet, write_contact_sheet
from mona_pipeline.sort.decisions import DECISIONS, decide, operation_for
from mona_pipeline.sort.journal import JOURNAL_NAME, Entry, Journal
from mona_pipeline.sort.request import SortRequest
from mona_pipeline.sort.sources import Item, SourceError, open_source

logger = logging.getLogger(__name__)

SUMMARY_NAME, REPORT_NAME = "summary.json", "report.html"


@dataclass
class Tally:
    """What one `process` call did; chunks' tallies add up to the run's."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DECISIONS, 0))
    skipped_done: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)
    action_failures: int = 0
    samples: dict = field(default_factory=dict)  # the contact-sheet samples of this call

    @classmethod
    def merged(cls, tallies: Iterable["Tally"]) -> "Tally":
        total = cls()
        for tally in tallies:
            for decision, count in tally.counts.items():
                total.counts[decision] += count
            total.skipped_done += tally.skipped_done
            total.errors += tally.errors
            total.action_failures += tally.action_failures
        return total


@dataclass
class _Read:
    """A picture on its way from the source to the journal."""

    item: Item
    data: bytes | None
    content_hash: str | None


def _picture_size(data: bytes | None) -> tuple[int, int] | None:
    """(width, height) from the header alone; None if unknown."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except Exception:
        return None


class SortRun:
    """An open sort run: its source, scorer, confidence, journal and contact sheet."""

    def __init__(self, request: SortRequest, scorer: Scorer | None = None):
        """Check the request against the source and the model, then open the run's journal.

        Args:
            scorer: the request's model, already loaded (flow tasks reuse one per process).
        Raises:
            SourceError: the source cannot be opened or does not allow the action.
            FileNotFoundError / ValueError: no usable model, or a review band above the confidence.
        """
        self.request = request
        self.source = open_source(request.source, exclude=request.out)
        if request.action in ("move", "delete", "link") and not self.source.movable:
            raise SourceError(f"action {request.action!r} needs pictures on a local disk, but {request.source} is "
                              f"read in place and never changed; use --action copy or none")
        self.scorer = scorer or Scorer(load_trained(request.model))
        metadata = self.scorer.trained.metadata
        self.confidence = request.confidence if request.confidence is not None else metadata.threshold
        if request.review_from is not None and request.review_from >= self.confidence:
            raise ValueError(f"review_from ({request.review_from}) must be below the confidence ({self.confidence})")
        self.run_dir = request.run_dir()
        self.journal = Journal(self.run_dir / JOURNAL_NAME, durable=request.action != "none")
        self.journal.set_info(source=request.source, out=str(request.out), action=request.action,
                              confidence=self.confidence, review_from=request.review_from, model=str(request.model),
                              target=metadata.target or "")
        self.sheet = ContactSheet(self.run_dir / "thumbs")

    def __enter__(self) -> "SortRun":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.journal.close()

    def recover(self) -> int:
        """Finish or roll back file operations a killed run left `planned`. Returns how many were found."""
        found = recovery.recover(self.journal)
        if found:
            logger.info("resumed run %s: %d interrupted operations checked", self.run_dir.name, found)
        return found

    # ------------------------------------------------------------ sorting
    def process(self, items: Iterable[Item], progress: Callable[[int], None] = lambda n: None,
                sheet: ContactSheet | None = None) -> Tally:
        """Score, decide, journal and act on every item not already done. Memory is bounded by the batch.

        Args:
            sheet: where contact-sheet samples go (default: the run's); the tally carries them.
        """
        tally, sheet = Tally(), sheet or self.sheet
        reads: dict[str, _Read] = {}

        def feed() -> Iterator[tuple[str, bytes | Exception]]:
            for item in items:
                if self.journal.status_of(item.item_id) == "done":
                    tally.skipped_done += 1
                    progress(1)
                    continue
                try:
                    data = item.read()
                except Exception as error:  # hostile sources fail in many ways: OSError, BadZipFile, zlib...
                    reads[item.item_id] = _Read(item, None, None)
                    reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
                    yield item.item_id, OSError(f"unreadable: {reason}")
                    continue
                reads[item.item_id] = _Read(item, data, content_hash(data))
                yield item.item_id, data

        batch: list[tuple[_Read, Scored]] = []
        for scored in score_stream(self.scorer, feed(), self.request.batch_size, self.request.max_image_pixels,
                                   with_images=True):
            batch.append((reads.pop(scored.key), scored))
            if len(batch) >= self.request.batch_size:
                self._commit(batch, tally, sheet)
                progress(len(batch))
                batch = []
        if batch:
            self._commit(batch, tally, sheet)
            progress(len(batch))
        tally.samples = sheet.samples
        return tally

    def _plan(self, read: _Read, scored: Scored, taken: set[Path]) -> Entry:
        decision = decide(scored.score, self.confidence, self.request.review_from)
        operation = operation_for(self.request.action, decision)
        destination = None
        if operation != "none":
            folder = self.run_dir / "trash" if operation == "trash" else self.request.out / decision
            destination = files.choose_destination(folder, PurePosixPath(read.item.name), read.content_hash, taken)
            taken.add(destination)
        return Entry(read.item.item_id, read.item.source, read.item.name, read.content_hash,
                     len(read.data) if read.data is not None else None, scored.score, decision, operation,
                     str(destination) if destination else None, scored.error,
                     status="planned" if operation != "none" else "done")

    def _commit(self, batch: list[tuple[_Read, Scored]], tally: Tally, sheet: ContactSheet) -> None:
        """Journal the batch as planned, do its file operations, journal them done (or failed)."""
        taken: set[Path] = set()
        entries = [self._plan(read, scored, taken) for read, scored in batch]
        self.journal.plan(entries)
        done, failed = [], {}
        for entry, (read, scored) in zip(entries, batch):
            tally.counts[entry.decision] += 1
            if entry.error:
                tally.errors.append((entry.source, entry.error))
            if entry.decision != "unreadable":
                sheet.offer(entry, scored.image, lambda data=read.data: _picture_size(data))
            if entry.action == "none":
                continue
            try:
                files.perform(entry.action, Path(entry.destination), read.data, read.item.path, entry.content_hash)
                done.append(entry.item_id)
            except OSError as error:
                failed[entry.item_id] = f"{entry.action} failed: {error}"
                logger.error("%s: %s failed, picture left in place: %s", entry.source, entry.action, error)
        self.journal.mark(done, "done")
        if failed:
            tally.action_failures += len(failed)
            self.journal.mark(list(failed), "failed", failed)

    # ------------------------------------------------------------ ending
    def finish(self, tally: Tally, seconds: float) -> dict:
        """Write summary.json and report.html for the run; returns the summary."""
        request = self.request
        counts = dict.fromkeys(DECISIONS, 0) | self.journal.counts()
        processed = sum(tally.counts.values())
        summary = {
            "source": request.source, "action": request.action, "confidence": self.confidence,
            "review_from": request.review_from, "model": str(request.model),
            "counts": counts, "pictures": sum(counts.values()), "this_session": tally.counts,
            "resumed_skipped": tally.skipped_done, "action_failures": tally.action_failures,
            "seconds": round(seconds, 2), "pictures_per_second": round(processed / seconds, 2) if seconds else None,
            "kept_dir": str(request.out / "keep"), "journal": str(self.journal.path),
            "report": str(self.run_dir / REPORT_NAME), "errors": tally.errors[:200],
        }
        (self.run_dir / SUMMARY_NAME).write_text(json.dumps(summary, indent=2))
        write_contact_sheet(self.run_dir / REPORT_NAME, summary, self.sheet)
        return summary


def sort_source(request: SortRequest, progress: Callable[[int], None] = lambda n: None) -> dict:
    """Sort a whole source in this process (the CLI path). Resumes the run if it was interrupted."""
    with SortRun(request) as run:
        run.recover()
        start = time.perf_counter()
        tally = run.process(run.source.items(), progress)
        return run.finish(tally, time.perf_counter() - start)
