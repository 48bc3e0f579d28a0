"""sort: stream any pile of pictures through the model; keep, review or drop each, never lose one.

    mona sort ~/Pictures/inbox --out ~/sorted --action move --review-from 0.5
    mona undo ~/sorted/runs/<run>            # put every moved or trashed picture back
    mona purge ~/sorted/runs/<run> --yes     # empty the run's trash for good

Decision per picture: keep when score >= P (the confidence), review when
R <= score < P (the optional review band), drop otherwise; a picture that cannot
be read is `unreadable` and stays where it is. Actions on keep/review: copy
(default), move or link into OUT/keep and OUT/review; `delete` moves dropped
pictures into the run's trash instead; `none` only reports. Every picture is
journaled (see journal.py), so a killed run resumes exactly where it stopped.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Iterator, Literal

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, model_validator

from mona_pipeline import actions, inference
from mona_pipeline.images import BadPicture, content_hash
from mona_pipeline.journal import Entry, Journal
from mona_pipeline.sources import Item, SourceError, open_source

logger = logging.getLogger(__name__)

DEFAULT_CONFIDENCE = 0.95
JOURNAL_NAME, SUMMARY_NAME, REPORT_NAME = "journal.sqlite", "summary.json", "report.html"


class SortRequest(BaseModel):
    """A sort's settings: the paper's settings window, and the Prefect sort flow's run form."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(description="folder, .zip/.tar(.gz/.bz2/.xz) archive, list file, or URL")
    out: Path = Field(description="output folder: keep/, review/ and runs/<run>/ go here")
    model: Path = Field(Path("models/target"), description="trained model folder (model.keras + metadata.json)")
    confidence: float | None = Field(None, ge=0.0, le=1.0, description="P; empty = the model's threshold")
    review_from: float | None = Field(None, ge=0.0, le=1.0, description="R: scores in [R, P) go to review/")
    action: Literal["copy", "move", "link", "delete", "none"] = "copy"
    batch_size: int = Field(64, ge=1, le=4096)
    chunk_size: int = Field(2048, ge=1, description="pictures per task in the Prefect flow")
    run: str | None = Field(None, description="run name; the same name resumes that run")
    max_image_pixels: int = Field(64_000_000, gt=0)

    @model_validator(mode="after")
    def _band_below_confidence(self) -> "SortRequest":
        if self.review_from is not None and self.confidence is not None and self.review_from >= self.confidence:
            raise ValueError(f"review_from ({self.review_from}) must be below confidence ({self.confidence})")
        return self

    def run_name(self) -> str:
        """The given name, or one derived from source and action, so a rerun finds the same run."""
        if self.run:
            return re.sub(r"[^A-Za-z0-9._-]+", "_", self.run)
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(self.source.rstrip("/")).name)[:40] or "source"
        key = f"{Path(self.source).expanduser().resolve() if '://' not in self.source else self.source}|{self.action}"
        return f"{stem}-{self.action}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"

    def run_dir(self) -> Path:
        return self.out / "runs" / self.run_name()


def decide(score: float | None, confidence: float, review_from: float | None) -> str:
    """keep | review | drop | unreadable."""
    if score is None:
        return "unreadable"
    if score >= confidence:
        return "keep"
    if review_from is not None and score >= review_from:
        return "review"
    return "drop"


ACTION_FOR = {  # (request action, decision) -> file operation
    **{(a, d): a for a in ("copy", "move", "link") for d in ("keep", "review")},
    ("delete", "drop"): "trash",
}


@dataclass
class Pending:
    """A scored picture on its way to the journal."""

    item: Item
    data: bytes | None
    content_hash: str | None


@dataclass
class RunState:
    counts: dict[str, int] = field(default_factory=lambda: {d: 0 for d in ("keep", "review", "drop", "unreadable")})
    skipped_done: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)
    action_failures: int = 0
    samples: dict = field(default_factory=dict)


def _picture_size(data: bytes | None) -> tuple[int, int] | None:
    """(width, height) from the header alone; None if unknown."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except Exception:
        return None


class Sorter:
    """One sort run: model, journal and report sampler, fed items by the CLI or by flow tasks."""

    def __init__(self, request: SortRequest):
        from mona_pipeline.report import ReportSampler
        from mona_pipeline.train import load_trained

        self.request = request
        self.source = open_source(request.source, exclude=request.out)
        if request.action in ("move", "delete", "link") and not self.source.movable:
            raise SourceError(f"action {request.action!r} needs pictures on a local disk, but {request.source} is "
                              f"read in place and never changed; use --action copy or none")
        self.model, self.metadata = load_trained(request.model)
        threshold = self.metadata.get("threshold", DEFAULT_CONFIDENCE)
        self.confidence = request.confidence if request.confidence is not None else float(threshold)
        if request.review_from is not None and request.review_from >= self.confidence:
            raise ValueError(f"review_from ({request.review_from}) must be below the confidence ({self.confidence})")
        self.image_size = int(self.metadata["image_size"])
        positive = self.metadata["class_names"].index(self.metadata["positive_class"])
        self.score_fn = inference.make_score_fn(self.model, positive)
        self.positive = positive
        self.run_dir = request.run_dir()
        self.journal = Journal(self.run_dir / JOURNAL_NAME, durable=request.action != "none")
        self.journal.set_info(source=request.source, out=str(request.out), action=request.action,
                              confidence=self.confidence, review_from=request.review_from, model=str(request.model),
                              target=self.metadata.get("target") or "")
        self.sampler = ReportSampler(self.run_dir / "thumbs")

    # ------------------------------------------------------------ resuming
    def recover(self) -> int:
        """Finish or roll back file operations a killed run left `planned`. Returns how many were found."""
        found = 0
        for entry in list(self.journal.entries("planned")):
            found += 1
            destination = Path(entry.destination) if entry.destination else None
            source = Path(entry.source)
            partial = destination.with_name(f".{destination.name}.partial") if destination else None
            if partial and partial.exists():
                partial.unlink()
            if entry.action in ("move", "trash"):
                arrived = destination.is_file() and actions.file_hash(destination) == entry.content_hash
                if arrived and source.exists() and actions.file_hash(source) == entry.content_hash:
                    source.unlink()  # the verified copy is in place; finish the move
                if arrived:
                    self.journal.mark([entry.item_id], "done")
                elif source.exists():
                    self.journal.forget(entry.item_id)  # nothing happened yet: sort it again
                else:
                    self.journal.mark([entry.item_id], "missing",
                                      {entry.item_id: "neither the source nor the destination exists"})
            else:  # copy / link: the destination is complete or absent
                complete = destination is not None and (
                    destination.is_symlink() if entry.action == "link"
                    else destination.is_file() and actions.file_hash(destination) == entry.content_hash)
                if complete:
                    self.journal.mark([entry.item_id], "done")
                else:
                    self.journal.forget(entry.item_id)
        return found

    # ------------------------------------------------------------ sorting
    def process(self, items: Iterable[Item], progress: Callable[[int], None] = lambda n: None,
                sampler=None) -> RunState:
        """Score, decide, journal and act on every item not already done. Memory is bounded by the batch.

        Args:
            sampler: where report samples go (default: this run's); state.samples holds them at the end.
        """
        state = RunState()
        sampler = sampler or self.sampler
        pending: dict[str, Pending] = {}

        def feed() -> Iterator[tuple[str, bytes | BadPicture]]:
            for item in items:
                if self.journal.status_of(item.item_id) == "done":
                    state.skipped_done += 1
                    progress(1)
                    continue
                try:
                    data = item.read()
                except Exception as error:  # hostile sources fail in many ways: OSError, BadZipFile, zlib...
                    pending[item.item_id] = Pending(item, None, None)
                    reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
                    yield item.item_id, BadPicture(f"unreadable: {reason}")
                    continue
                pending[item.item_id] = Pending(item, data, content_hash(data))
                yield item.item_id, data

        batch: list[tuple[Pending, inference.Scored]] = []
        for scored in inference.score_stream(self.model, feed(), self.image_size, self.positive,
                                             self.request.batch_size, self.request.max_image_pixels, self.score_fn,
                                             with_images=True):
            batch.append((pending.pop(scored.key), scored))
            if len(batch) >= self.request.batch_size:
                self._commit(batch, state, sampler)
                progress(len(batch))
                batch = []
        if batch:
            self._commit(batch, state, sampler)
            progress(len(batch))
        state.samples = sampler.samples
        return state

    def _plan(self, pending: Pending, scored: inference.Scored, taken: set[Path]) -> Entry:
        decision = decide(scored.score, self.confidence, self.request.review_from)
        operation = ACTION_FOR.get((self.request.action, decision), "none")
        destination = None
        if operation != "none":
            folder = self.run_dir / "trash" if operation == "trash" else self.request.out / decision
            name = PurePosixPath(pending.item.name)
            destination = actions.choose_destination(folder, name, pending.content_hash)
            if destination in taken:  # another picture of this batch took the name
                destination = destination.with_name(f"{destination.stem}~{pending.content_hash[:8]}{destination.suffix}")
            taken.add(destination)
        return Entry(pending.item.item_id, pending.item.source, pending.item.name, pending.content_hash,
                     len(pending.data) if pending.data is not None else None, scored.score, decision, operation,
                     str(destination) if destination else None, scored.error,
                     status="planned" if operation != "none" else "done")

    def _commit(self, batch: list[tuple[Pending, inference.Scored]], state: RunState, sampler) -> None:
        """Journal the batch as planned, do its file operations, journal them done (or failed)."""
        taken: set[Path] = set()
        entries = [self._plan(pending, scored, taken) for pending, scored in batch]
        self.journal.plan(entries)
        done, failed = [], {}
        for entry, (pending, scored) in zip(entries, batch):
            state.counts[entry.decision] += 1
            if entry.error:
                state.errors.append((entry.source, entry.error))
            if entry.decision != "unreadable":
                sampler.offer(entry, scored.image, lambda data=pending.data: _picture_size(data))
            if entry.action == "none":
                continue
            try:
                self._perform(entry, pending)
                done.append(entry.item_id)
            except OSError as error:
                failed[entry.item_id] = f"{entry.action} failed: {error}"
                logger.error("%s: %s failed, picture left in place: %s", entry.source, entry.action, error)
        self.journal.mark(done, "done")
        if failed:
            state.action_failures += len(failed)
            self.journal.mark(list(failed), "failed", failed)

    def _perform(self, entry: Entry, pending: Pending) -> None:
        destination = Path(entry.destination)
        if entry.action == "copy":
            actions.copy_picture(pending.data, destination, entry.content_hash)
        elif entry.action in ("move", "trash"):
            actions.move_picture(pending.item.path, destination, entry.content_hash)
        elif entry.action == "link":
            actions.link_picture(pending.item.path, destination)

    # ------------------------------------------------------------ ending
    def finish(self, state: RunState, seconds: float) -> dict:
        """Write summary.json and report.html for the run; returns the summary."""
        from mona_pipeline.report import write_report

        counts = {d: 0 for d in ("keep", "review", "drop", "unreadable")} | self.journal.counts()
        processed = sum(state.counts.values())
        summary = {
            "source": self.request.source, "action": self.request.action, "confidence": self.confidence,
            "review_from": self.request.review_from, "model": str(self.request.model),
            "counts": counts, "pictures": sum(counts.values()), "this_session": state.counts,
            "resumed_skipped": state.skipped_done, "action_failures": state.action_failures,
            "seconds": round(seconds, 2), "pictures_per_second": round(processed / seconds, 2) if seconds else None,
            "kept_dir": str(self.request.out / "keep"), "journal": str(self.journal.path),
            "report": str(self.run_dir / REPORT_NAME), "errors": state.errors[:200],
        }
        (self.run_dir / SUMMARY_NAME).write_text(json.dumps(summary, indent=2))
        write_report(self.run_dir / REPORT_NAME, summary, self.sampler)
        return summary

    def close(self) -> None:
        self.journal.close()


def sort_source(request: SortRequest, progress: Callable[[int], None] = lambda n: None) -> dict:
    """Sort a whole source in this process (the CLI path). Resumes the run if it was interrupted."""
    sorter = Sorter(request)
    try:
        recovered = sorter.recover()
        if recovered:
            logger.info("resumed run %s: %d interrupted operations checked", sorter.run_dir.name, recovered)
        start = time.perf_counter()
        state = sorter.process(sorter.source.items(), progress)
        return sorter.finish(state, time.perf_counter() - start)
    finally:
        sorter.close()


# ---------------------------------------------------------------- undo and purge


def _restore(entry: Entry) -> str | None:
    """Put one moved or trashed picture back; returns a problem, or None when restored."""
    destination, source = Path(entry.destination), Path(entry.source)
    if not destination.is_file():
        return f"{destination} is gone; cannot restore {source}"
    if actions.file_hash(destination) != entry.content_hash:
        return f"{destination} changed since the run (hash differs); left where it is"
    if source.exists():
        if source.is_file() and actions.file_hash(source) == entry.content_hash:
            destination.unlink()  # an identical picture is already back in place
            return None
        return f"{source} exists again with other content; {destination} left where it is"
    source.parent.mkdir(parents=True, exist_ok=True)
    actions.move_picture(destination, source, entry.content_hash)
    return None


def undo_run(run_dir: Path) -> dict:
    """Undo a sort run: moved and trashed pictures go back (hash-checked), copies and links are removed.

    Returns:
        {"restored": n, "removed_copies": n, "problems": [(source, reason), ...]}
    """
    journal_path = run_dir / JOURNAL_NAME
    if not journal_path.is_file():
        raise FileNotFoundError(f"no journal at {journal_path}: is {run_dir} a sort run folder?")
    restored, removed, problems = 0, 0, []
    with Journal(journal_path) as journal:
        for entry in list(journal.entries("done")):
            if entry.action == "none":
                continue
            try:
                if entry.action in ("move", "trash"):
                    problem = _restore(entry)
                    restored += problem is None
                else:  # copy / link: remove what the run made, only if it is still what the run made
                    destination = Path(entry.destination)
                    problem = None
                    if entry.action == "link" and destination.is_symlink():
                        destination.unlink()
                    elif entry.action == "copy" and destination.is_file():
                        if actions.file_hash(destination) == entry.content_hash:
                            destination.unlink()
                        else:
                            problem = f"{destination} changed since the run; kept"
                    removed += problem is None
            except OSError as error:
                problem = str(error)
            if problem:
                problems.append((entry.source, problem))
                journal.mark([entry.item_id], "undo_failed", {entry.item_id: problem})
            else:
                journal.mark([entry.item_id], "undone")
    return {"restored": restored, "removed_copies": removed, "problems": problems}


def purge_run(run_dir: Path) -> dict:
    """Delete a run's trash for good. The only code path that removes a picture permanently."""
    removed, problems = 0, []
    with Journal(run_dir / JOURNAL_NAME) as journal:
        for entry in list(journal.entries("done")):
            if entry.action != "trash":
                continue
            path = Path(entry.destination)
            try:
                path.unlink()
                removed += 1
                journal.mark([entry.item_id], "purged")
            except OSError as error:
                problems.append((str(path), str(error)))
    return {"purged": removed, "problems": problems}
