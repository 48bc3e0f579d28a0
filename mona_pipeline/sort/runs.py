"""Your own runs: the sort runs under an output folder, and one run in a few lines.

    mona runs ~/sorted                       # a table: started, source, action, counts, state
    mona summary ~/sorted/runs/<run>         # one run: counts, settings, report, journal

Everything is read from the runs' journals (opened read-only) and their summary.json: listing never
changes a run, and a run another process is working on is shown as running, not touched.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from mona_pipeline.sort.decisions import DECISIONS
from mona_pipeline.sort.journal import JOURNAL_NAME, Journal, NotARun
from mona_pipeline.sort.lock import holder
from mona_pipeline.sort.results import SUMMARY_NAME, SortSummary


@dataclass(frozen=True)
class RunRecord:
    """One run as its journal and summary tell it."""

    path: Path
    info: dict[str, str]  # the journal's run table: source, action, confidence, model, target, ...
    counts: dict[str, int]  # pictures per decision
    operations: dict[tuple[str, str], int]  # (status, action) -> entries
    started: float | None  # the first entry's time
    changed: float | None  # the last entry's time
    summary: SortSummary | None  # None: no session of the run has finished yet
    busy: str | None  # who holds the run's lock now, or None
    targets: dict[str, dict[str, int]]  # a run with several models: per character, its pictures per decision
    review: list[str] = ()  # a review's audit (review/audit.py), once the run has verdicts: what it tells

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def pictures(self) -> int:
        return sum(self.counts.values())

    def with_status(self, *statuses: str, acted: bool = False) -> int:
        """Entries in one of `statuses` (only those with a file operation when `acted`)."""
        return sum(n for (status, action), n in self.operations.items()
                   if status in statuses and not (acted and action == "none"))

    @property
    def state(self) -> str:
        """running | unfinished | undone | partly undone | undo failed | incomplete | complete (+ trash purged)."""
        if self.busy:
            return "running"
        undone, still_done = self.with_status("undone"), self.with_status("done", acted=True)
        if self.with_status("undo_failed"):
            state = "undo failed"
        elif undone and not still_done:
            state = "undone"
        elif undone:
            state = "partly undone"
        elif self.with_status("planned") or self.summary is None:
            state = "unfinished"
        elif not self.summary.complete:
            state = "incomplete"
        else:
            state = "complete"
        return state + (", trash purged" if self.with_status("purged") else "")


def read_run(run_dir: Path, target_precision: float = 0.95) -> RunRecord:
    """One run, read without changing anything.

    Args:
        target_precision: the precision the audit's suggested threshold aims at (evaluate.target_precision).

    Raises:
        NotARun: the folder holds no sort journal.
    """
    run_dir = run_dir.expanduser().absolute()
    path = run_dir / JOURNAL_NAME
    if not path.is_file():
        raise NotARun(f"{run_dir} is not a sort run: no {JOURNAL_NAME} in it (give OUT/runs/<run>; "
                      f"`mona runs OUT` lists them)")
    try:
        with Journal(path, read_only=True) as journal:
            info = journal.info()
            counts = dict.fromkeys(DECISIONS, 0) | journal.counts()
            targets = journal.target_counts()
            review = _review_lines(journal, target_precision)
            rows = journal.connection.execute(
                "SELECT status, action, COUNT(*) AS n, MIN(time) AS first, MAX(time) AS last FROM entries "
                "GROUP BY status, action").fetchall()
    except sqlite3.DatabaseError as error:
        raise NotARun(f"{run_dir} is not a sort run: its {JOURNAL_NAME} cannot be read ({error})") from None
    summary = None
    if (run_dir / SUMMARY_NAME).is_file():
        try:
            summary = SortSummary.model_validate_json((run_dir / SUMMARY_NAME).read_text())
        except ValueError:
            summary = None  # written by another version: the journal still tells the counts
    return RunRecord(run_dir, info, counts, {(row["status"], row["action"]): row["n"] for row in rows},
                     min((row["first"] for row in rows), default=None), max((row["last"] for row in rows), default=None),
                     summary, holder(run_dir), targets, review)


def _review_lines(journal: Journal, target_precision: float) -> list[str]:
    """The audit of each of the run's targets that has verdicts (none: an empty list)."""
    from mona_pipeline.review import audit, verdicts

    if not verdicts.current(journal):
        return []
    lines = []
    for target in verdicts.targets(journal):
        result = audit.estimate(journal, target, target_precision)
        if result.reviewed:
            lines += [f"{result.reviewed} reviewed" + (f" ({target})" if target else "")] + result.lines()
    return lines


def list_runs(out: Path) -> list[RunRecord]:
    """The runs under OUT/runs, oldest first; folders there that are not runs are left out.

    Raises:
        NotARun: OUT has no runs/ folder.
    """
    out = out.expanduser().absolute()
    runs_dir = out / "runs" if (out / "runs").is_dir() else out  # OUT, or OUT/runs itself
    folders = [folder for folder in runs_dir.iterdir() if (folder / JOURNAL_NAME).is_file()] if runs_dir.is_dir() \
        else []
    if not folders:
        raise NotARun(f"no sort runs in {out} (looked for {out / 'runs'}/<run>/{JOURNAL_NAME}); give the --out "
                      f"folder of a sort")
    return sorted(map(read_run, folders), key=lambda record: (record.started or 0.0, record.name))


def _when(seconds: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(seconds)) if seconds else "-"


def _counts(record: RunRecord) -> str:
    return " ".join(f"{decision} {record.counts[decision]}" for decision in DECISIONS)


def runs_table(records: list[RunRecord]) -> str:
    """`mona runs`: one line per run, as a Markdown table a terminal shows as is."""
    lines = ["| started | run | source | action | pictures | keep | review | drop | unreadable | state |",
             "|---|---|---|---|---:|---:|---:|---:|---:|---|"]
    for record in records:
        counts = " | ".join(str(record.counts[decision]) for decision in DECISIONS)
        lines.append(f"| {_when(record.started)} | {record.name} | {record.info.get('source', '?')} | "
                     f"{record.info.get('action', '?')} | {record.pictures} | {counts} | {record.state} |")
    return "\n".join(lines)


def run_text(record: RunRecord) -> str:
    """`mona summary RUN`: one run's counts, settings, report and journal, and what can be done next."""
    info, summary = record.info, record.summary
    review = info.get("review_from", "None")
    lines = [f"run {record.path}",
             f"  source      {info.get('source', '?')}",
             f"  settings    action {info.get('action', '?')}, P = {info.get('confidence', '?')}, review from "
             f"{'-' if review == 'None' else review}, tiling {summary.tiling.mode if summary else '?'}",
             f"  model       {info.get('model', '?')} (target {info.get('target') or '?'}, fingerprint "
             f"{info.get('model_fingerprint', '?')})",
             f"  when        started {_when(record.started)}, last change {_when(record.changed)}",
             f"  pictures    {record.pictures}: {_counts(record)}",
             *(f"  {target:<11} " + " ".join(f"{d} {counts.get(d, 0)}" for d in DECISIONS[:3])
               for target, counts in record.targets.items()),
             f"  state       {record.state}"]
    lines += [f"  {'review' if number == 0 else '':<11} {line}" for number, line in enumerate(record.review)]
    if summary is not None:
        lines += [f"  kept        {summary.kept_dir}", f"  report      {summary.report}"]
        lines += [f"  problem     {problem}" for problem in summary.problems]
    statuses = ", ".join(f"{n} {status}" for status, n in sorted(_by_status(record).items()))
    lines.append(f"  journal     {record.path / JOURNAL_NAME} ({statuses or 'empty'})")
    if record.busy:
        lines.append(f"  in use by   {record.busy}")
    elif record.state == "unfinished":
        lines.append("  next        run the same sort again: it resumes where this one stopped")
    if record.with_status("done", acted=True) and not record.busy:
        lines.append(f"  undo        mona undo {record.path}")
    return "\n".join(lines)


def _by_status(record: RunRecord) -> dict[str, int]:
    totals: dict[str, int] = {}
    for (status, _action), n in record.operations.items():
        totals[status] = totals.get(status, 0) + n
    return totals
