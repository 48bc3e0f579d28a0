"""One sort run: stream pictures through the model, decide, journal, act; never lose one.

    with SortRun(request) as run:          # checks source, action and model; opens the journal
        run.recover()                      # finish what a killed run left half done
        tally = run.process(run.source.items(), progress)
        summary = run.finish(tally, seconds)

`sort_source` does exactly that (the CLI path); the Prefect flow runs `process`
per chunk in tasks and merges the tallies. With several models (`--model A --model B`)
every picture is decoded once and scored by each (`inference.Panel`), and decided per
target: kept under keep/<target>/ of each target it matches (decisions.py), in one
journal that one undo reverses. Every picture is journaled before and
after its file operation (journal.py), so a killed run resumes where it stopped.

A run never stops without a word: an item that cannot be read is reported and the
run goes on; a source that cannot be read to its end, or file operations that fail,
make the summary incomplete (`complete: false`, the CLI exits 1); a full or
read-only disk under OUT stops the run with `SortStopped`, leaving a state the same
command resumes (and `mona undo` rolls back). The run name carries what decides
(source, action, confidence, review band, model): other settings are another run.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable, Iterator

from mona_pipeline.images import content_hash
from mona_pipeline.inference import Panel, Scored, Scorer, box_text, score_stream
from mona_pipeline.sort import files, recovery
from mona_pipeline.sort.contact_sheet import ContactSheet, picture_size, write_contact_sheet
from mona_pipeline.sort.decisions import DECISIONS, decide, operation_for, operations_for
from mona_pipeline.sort.journal import JOURNAL_NAME, Entry, Journal, row_id
from mona_pipeline.sort.lock import hold_run
from mona_pipeline.sort.reading import Item, SourceError
from mona_pipeline.sort.request import PLAIN_NAME, SettingsError, SortRequest
from mona_pipeline.sort.results import SUMMARY_NAME, SortSummary, TargetResult
from mona_pipeline.sort.sources import count_in_background, open_source
from mona_pipeline.sort.stop import StopRequest, stopping_error
from mona_pipeline.sort.tally import FOUND_SAMPLE, Tally
from mona_pipeline.trained import load_trained, model_fingerprint

logger = logging.getLogger(__name__)

REPORT_NAME = "report.html"
@dataclass
class _Read:
    """A picture on its way from the source to the journal."""

    item: Item
    data: bytes | None
    content_hash: str | None


def load_scorer(model: Path) -> Scorer:
    """A model folder loaded for scoring."""
    return Scorer(load_trained(model))


class SortRun:
    """An open sort run: its source, scorer, confidence, journal and contact sheet."""

    def __init__(self, request: SortRequest, scorer: Scorer | Callable[[Path], Scorer] | None = None, *,
                 hold: bool = True, stop: StopRequest | None = None):
        """Check the request against the source and the model, take the run's lock, open its journal.

        Args:
            scorer: the request's model, already loaded, or a function that loads a model folder (flow tasks
                reuse one per process); called after the source is checked, so a wrong source is said first.
            hold: take the run's lock (lock.py). False only for work done under a lock this process or the
                flow that sent it already holds (a Prefect sort's recovery and chunk tasks).
            stop: set by a signal (stop.py): the run stops at the next file operation, journal consistent.
        Raises:
            SourceError: the source cannot be opened or does not allow the action.
            FileNotFoundError / ValueError: no usable model, or a review band above the confidence.
        """
        self.request = request
        self.source = open_source(request.source, exclude=request.out)
        if request.action in ("move", "delete", "link") and not self.source.movable:
            raise SourceError(f"action {request.action!r} needs pictures on a local disk, but {request.source} is "
                              f"read in place and never changed; use --action copy or none")
        self.scorers = [scorer] if isinstance(scorer, Scorer) else [(scorer or load_scorer)(model)
                                                                    for model in request.models]
        self.scorer, self.panel = self.scorers[0], Panel(self.scorers)
        self.targets = target_names(request.models, self.scorers) if len(self.scorers) > 1 else None
        self.confidences = [scorer.trained.metadata.threshold if request.confidence is None else request.confidence
                            for scorer in self.scorers]
        self.confidence = self.confidences[0]
        if request.review_from is not None and request.review_from >= min(self.confidences):
            raise SettingsError(f"review_from ({request.review_from}) must be below the confidence "
                                f"({min(self.confidences)})")
        if request.out.exists() and not request.out.is_dir():
            raise SettingsError(f"output folder {request.out} is a file; give a folder (or a new name) for --out")
        self.tiling = request.tiling_params
        settings = {"source": request.source,  # resolved once, when the request was built
                    "action": request.action, "confidence": ",".join(map(str, self.confidences)),
                    "review_from": str(request.review_from),
                    "model_fingerprint": ",".join(model_fingerprint(model) for model in request.models)}
        if self.tiling.mode != "off":  # tiles change decisions: another tiling is another run
            settings["tiling"] = self.tiling.model_dump_json()
        self.run_dir = request.run_dir("|".join(settings.values()))
        files.refuse_links_in_out(request.out, self.run_dir)
        self.stop = stop if stop is not None else StopRequest()
        self._held = contextlib.ExitStack()
        try:
            if hold:
                self._held.enter_context(hold_run(self.run_dir, "sort"))
            self.journal = Journal(self.run_dir / JOURNAL_NAME, durable=request.action != "none")
        except BaseException:
            self._held.close()
            raise
        try:
            _check_same_settings(self.run_dir, self.journal.info(), settings)
            # out_path: where OUT was, so that an undo finds the pictures after OUT was moved as a whole
            self.journal.set_info(out=str(request.out), out_path=str(request.out.resolve()),
                                  model=", ".join(map(str, request.models)),
                                  target=", ".join(self.targets or [self.scorer.trained.metadata.target or ""]),
                                  **settings)
        except Exception:
            self.close()
            raise
        self.sheet = ContactSheet(self.run_dir / "thumbs")

    def __enter__(self) -> "SortRun":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.journal.close()
        self._held.close()

    @property
    def problems(self) -> list[str]:
        """What the source could not list (unreadable folders, a damaged archive), as messages."""
        return list(getattr(self.source, "problems", []))

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
        failure: list[Exception] = []  # what must stop the run, raised once the stream has ended

        def feed() -> Iterator[tuple[str, bytes | Exception]]:
            # Never raise in here: tf.data would end the whole stream without a word (ignore_errors).
            try:
                yield from self._feed(items, reads, tally, progress)
            except Exception as error:
                failure.append(error)

        batch: list[tuple[_Read, Scored]] = []
        for scored in score_stream(self.panel, feed(), self.request.batch_size, self.request.max_image_pixels,
                                   with_images=True, tiling=self.tiling, decisive=self.confidences,
                                   stop=lambda: self.stop.requested):
            read = reads.pop(scored.key)
            if self.stop.requested:  # drain what TF still holds, unjournaled: the stream ends as at the source's end
                continue
            batch.append((read, scored))
            progress(1)  # scored; journaled and acted on with its batch
            if len(batch) >= self.request.batch_size:
                self._commit(batch, tally, sheet)
                batch = []
        if batch and not self.stop.requested:
            self._commit(batch, tally, sheet)
        if failure:
            raise stopping_error(failure[0], self.run_dir) or failure[0]
        self.stop.check(f"{sum(tally.counts.values())} pictures sorted this session")
        if reads:  # read, never scored: the scoring stream ended early; the same command sorts them
            tally.problems.append(f"{len(reads)} pictures were read but not scored (the scoring stream stopped "
                                  f"early, at {next(iter(reads))}); run the same command again")
        tally.samples = sheet.samples
        return tally

    def _feed(self, items: Iterable[Item], reads: dict[str, _Read], tally: Tally,
              progress: Callable[[int], None]) -> Iterator[tuple[str, bytes | Exception]]:
        """(item id, bytes or the error reading it) for every item not already done; each item's
        failure is that item's error, a failing source ends the feed with a problem in the tally."""
        iterator = iter(items)
        while not self.stop.requested:
            try:
                item = next(iterator)
            except StopIteration:
                return
            except Exception as error:  # the source itself (a listing, an archive) failed: say where
                tally.problems.append(f"reading {self.request.source} stopped: {type(error).__name__}: {error}")
                return
            # The journal knows a picture by its name and its content's stamp (size and time, or a checksum):
            # a new picture under a name an earlier pass used is a new picture.
            status = self._status(item.key)
            if status == "done" or item.key in reads:  # done, or listed twice and already on its way
                tally.skipped_done += status == "done"
                progress(1)
                continue
            try:
                data = item.read()
            except Exception as error:  # hostile sources fail in many ways: OSError, BadZipFile, zlib...
                reads[item.key] = _Read(item, None, None)
                reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
                yield item.key, OSError(f"unreadable: {reason}")
                continue
            reads[item.key] = _Read(item, data, content_hash(data))
            yield item.key, data

    def _status(self, item_key: str) -> str | None:
        """done when every row of the picture is done (one, or one per target); rows a killed attempt at this
        chunk left planned are settled first. Anything else: sort it (again)."""
        rows = self.journal.rows_of(item_key)
        statuses = [recovery.settle(self.journal, row) if row.status == "planned" else row.status for row in rows]
        return "done" if len(rows) == len(self.targets or [None]) and all(s == "done" for s in statuses) else None

    def _plan(self, read: _Read, scored: Scored, taken: dict[Path, str], tally: Tally) -> list[Entry]:
        """The picture's rows: one, or one per target (a move or trash last: it takes the source away). A
        picture already at its destination (under one target or several) counts once in `already_there`."""
        review_from = self.request.review_from
        if self.targets is None:
            decision = decide(scored.score, self.confidence, review_from)
            entries = [self._entry(read, scored, decision, operation_for(self.request.action, decision), None, 0,
                                   taken)]
        else:
            scores = scored.scores or [None] * len(self.targets)
            decisions = [decide(score, confidence, review_from)
                         for score, confidence in zip(scores, self.confidences)]
            entries = sorted((self._entry(read, scored, decision, operation, target, index, taken)
                              for index, (decision, operation, target) in enumerate(
                                  zip(decisions, operations_for(self.request.action, decisions), self.targets))),
                             key=lambda entry: entry.action in ("move", "trash"))
        tally.already_there += any(entry.destination and entry.action == "none" for entry in entries)
        return entries

    def _entry(self, read: _Read, scored: Scored, decision: str, operation: str, target: str | None, model: int,
               taken: dict[Path, str]) -> Entry:
        """One row of the picture; an operation whose identical picture is already at its destination becomes
        "none" (done, its destination kept)."""
        destination, error, status = None, scored.error, "planned"
        if operation != "none":
            folder = self.run_dir / "trash" if operation == "trash" else self.request.out / decision / (target or "")
            try:
                destination, already_there = files.choose_destination(
                    folder, PurePosixPath(read.item.name), read.content_hash, taken,
                    link_to=read.item.path if operation == "link" else None)
            except files.UnsafeDestination as unsafe:  # a link inside OUT: this picture stays, the run goes on
                error, status = f"{operation} failed, picture left in place: {unsafe.strerror}", "failed"
            else:
                taken[destination] = read.content_hash
                if already_there:  # e.g. an earlier run put it there, or it *is* the source: nothing to do
                    operation = "none"
        return Entry(row_id(read.item.key, target), read.item.source, read.item.name, read.content_hash,
                     len(read.data) if read.data is not None else None,
                     scored.scores[model] if scored.scores else None, decision, operation,
                     str(destination) if destination else None, error,
                     status="done" if operation == "none" else status,
                     box=box_text(scored.boxes[model] if len(scored.boxes) > model else None),
                     picture=read.item.key if target else None, target=target)

    def _commit(self, batch: list[tuple[_Read, Scored]], tally: Tally, sheet: ContactSheet) -> None:
        """Journal the batch as planned, do its file operations, journal them done (or failed).

        Raises:
            SortStopped: the disk under OUT is full or read-only, or the journal cannot be written.
        """
        taken: dict[Path, str] = {}  # destinations chosen in this batch -> their content's hash
        pictures = [(read, scored, self._plan(read, scored, taken, tally)) for read, scored in batch]
        self._write_journal(self.journal.plan, [entry for _, _, entries in pictures for entry in entries])
        done, failed, copied = [], {}, {}
        try:
            for position, (read, scored, entries) in enumerate(pictures):
                if self.stop.requested:  # a signal: the rest of the batch is not begun (sorted again on rerun)
                    for _, _, rest in pictures[position:]:
                        for entry in rest:
                            if entry.status == "planned":
                                self._write_journal(self.journal.forget, entry.item_id)
                    return
                self._count(entries, scored, read, tally, sheet)
                for entry in entries:
                    if entry.status == "failed":  # refused when planned (a link inside OUT)
                        failed[entry.item_id] = entry.error
                        logger.error("%s: %s", entry.source, entry.error)
                        continue
                    if entry.action == "none":
                        continue
                    try:
                        performed = files.perform(entry.action, Path(entry.destination), read.data,
                                                  read.item.path, entry.content_hash)
                        done.append(entry.item_id)
                        if performed != entry.action:  # a read-only source: copied, not moved
                            copied[entry.item_id] = performed
                    except files.SourceNotWritable as error:
                        failed[entry.item_id] = str(error)
                        logger.error("%s: %s", entry.source, error)
                    except OSError as error:
                        stop = stopping_error(error, self.run_dir, entry.destination)
                        if stop:
                            raise stop from error
                        failed[entry.item_id] = f"{entry.action} failed: {error}"
                        logger.error("%s: %s failed, picture left in place: %s", entry.source, entry.action, error)
        finally:  # also when stopping: what was done is recorded (or, if even that fails, recovered on rerun)
            self._write_journal(self.journal.mark, done, "done", None, copied)
            tally.copied_not_moved += len(copied)
            if failed:
                tally.action_failures += len(failed)
                self._write_journal(self.journal.mark, list(failed), "failed", failed)

    def _count(self, entries: list[Entry], scored: Scored, read: _Read, tally: Tally, sheet: ContactSheet) -> None:
        """A picture's place in the tally (once, by its best decision; per target too) and on the contact sheet."""
        best = min(entries, key=lambda entry: (DECISIONS.index(entry.decision), -(entry.score or 0.0)))
        tally.counts[best.decision] += 1
        for entry in entries:
            if entry.target:
                tally.count_target(entry.target, entry.decision)
        for error in dict.fromkeys(entry.error for entry in entries if entry.error):
            tally.errors.append((best.source, error))
        if best.decision != "unreadable":
            self._offer(sheet, best, scored, read)
        found = [entry for entry in entries if entry.box and entry.decision in ("keep", "review")]
        if found:
            tally.found_in_tiles += 1
            if len(tally.found_sample) < FOUND_SAMPLE:  # bounded: a run may keep millions
                tally.found_sample.append({"source": best.source, "decision": found[0].decision,
                                           "score": round(found[0].score, 4), "box": found[0].box,
                                           **({"target": found[0].target} if found[0].target else {})})

    def _write_journal(self, write: Callable, *arguments) -> None:
        try:
            write(*arguments)
        except sqlite3.Error as error:
            raise (stopping_error(error, self.run_dir) or error) from error

    def _offer(self, sheet: ContactSheet, entry: Entry, scored: Scored, read: _Read) -> None:
        """A contact-sheet thumbnail; a thumbnail that cannot be written costs the report, not the run."""
        try:
            sheet.offer(entry, scored.image, lambda data=read.data: picture_size(data))
        except OSError as error:
            stop = stopping_error(error, self.run_dir, str(sheet.thumbs_dir))
            if stop:
                raise stop from error
            logger.warning("thumbnail of %s not written: %s", entry.source, error)

    # ------------------------------------------------------------ ending
    def finish(self, tally: Tally, seconds: float) -> SortSummary:
        """Write summary.json and report.html for the run; returns the summary."""
        request = self.request
        counts = dict.fromkeys(DECISIONS, 0) | self.journal.counts()
        processed = sum(tally.counts.values())
        problems = self.problems + tally.problems
        summary = SortSummary(
            source=request.source, action=request.action, confidence=self.confidence,
            review_from=request.review_from, model=", ".join(map(str, request.models)), counts=counts,
            pictures=sum(counts.values()), targets=self._target_results(),
            this_session=tally.counts, resumed_skipped=tally.skipped_done, already_there=tally.already_there,
            copied_not_moved=tally.copied_not_moved, skipped=dict(self.source.skips.counts),
            notes=list(self.source.skips.notes), action_failures=tally.action_failures, problems=problems,
            unreadable_folders=list(getattr(self.source, "unreadable_folders", [])),
            complete=not problems and not tally.action_failures, seconds=round(seconds, 2),
            pictures_per_second=round(processed / seconds, 2) if seconds else None,
            kept_dir=str(request.out / "keep"), journal=str(self.journal.path), report=str(self.run_dir / REPORT_NAME),
            errors=tally.errors[:200], tiling=self.tiling, found_in_tiles=tally.found_in_tiles,
            found_in_tiles_sample=tally.found_sample)
        try:
            (self.run_dir / SUMMARY_NAME).write_text(summary.model_dump_json(indent=2))
            write_contact_sheet(self.run_dir / REPORT_NAME, summary, self.sheet)
        except OSError as error:
            raise (stopping_error(error, self.run_dir, str(self.run_dir)) or error) from error
        return summary

    def _target_results(self) -> list[TargetResult]:
        if self.targets is None:
            return []
        counts = self.journal.target_counts()
        return [TargetResult(target=target, model=str(model), confidence=confidence,
                             counts=dict.fromkeys(DECISIONS, 0) | counts.get(target, {}),
                             kept_dir=str(self.request.out / "keep" / target))
                for target, model, confidence in zip(self.targets, self.request.models, self.confidences)]

    def finish_chunks(self, tallies: list[Tally], seconds: float) -> SortSummary:
        """`finish` for a run done in chunks (the Prefect flow): their tallies and sheet samples pooled."""
        self.sheet.merge([tally.samples for tally in tallies])
        return self.finish(Tally.merged(tallies), seconds)


def sort_source(request: SortRequest, progress: Callable[[int], None] = lambda n: None,
                stop: StopRequest | None = None, total: Callable[[int], None] | None = None) -> SortSummary:
    """Sort a whole source in this process (the CLI path). Resumes the run if it was interrupted.

    Args:
        progress: called with the number of pictures done, a picture or a few at a time.
        total: called (from another thread) with the source's size once a count beside the sort knows it;
            never called where only the sort's own pass can tell (a tar stream, a remote folder).
    Raises:
        Interrupted: `stop` was set (a signal); the journal is consistent and the same request resumes.
    """
    with SortRun(request, stop=stop) as run:
        if total is not None:
            count_in_background(run.source, total)
        run.recover()
        start = time.perf_counter()
        tally = run.process(run.source.items(), progress)
        return run.finish(tally, time.perf_counter() - start)


def target_names(models: list[Path], scorers: list[Scorer]) -> list[str]:
    """Each model's character (its metadata's target, else its folder's name): the folder it keeps into.

    Raises:
        SettingsError: a name that is no plain folder name, or two models for one character.
    """
    names = []
    for model, scorer in zip(models, scorers):
        name = scorer.trained.metadata.target or Path(model).resolve().name
        if not PLAIN_NAME.fullmatch(name):
            raise SettingsError(f"model {model} finds {name!r}, which is not a plain folder name for keep/<target>/: "
                                f"use letters, digits, '.', '_' and '-'")
        if name in names:
            raise SettingsError(f"models {models[names.index(name)]} and {model} both find {name!r}: give one model "
                                f"per character")
        names.append(name)
    return names


def _check_same_settings(run_dir: Path, recorded: dict[str, str], settings: dict[str, str]) -> None:
    """Refuse to resume a run (a name given with --run) under settings other than its own.

    Raises:
        SettingsError: names each setting that differs, with both values.
    """
    changed = [f"{key} {recorded[key]} (this sort: {value})" for key, value in settings.items()
               if key in recorded and recorded[key] != value]
    if changed:
        raise SettingsError(f"run {run_dir.name} was made with {', '.join(changed)}; resuming it would mix "
                         f"decisions. Give another --run name (or none: a new run is named for these settings), "
                         f"or the run's own settings to finish it")
