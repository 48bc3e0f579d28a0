"""A user's verdicts on a sort run's pictures, and the order in which the review page asks for them.

    mark(journal, "a.png@12:34", "yes", queued=True)   # she is there
    withdraw_last(journal)                              # `u`: take the last mark back
    current(journal)                                    # {item id: "yes" | "no"}
    queue = review_queue(journal)                       # review band first, then the audit sample

Verdicts live in the run's journal (table `verdicts`, sort/journal.py), one row per mark, written in its own
transaction before the page moves on: a reload, a second tab or a killed server loses nothing, and withdrawing
the last mark brings back the one before it. A row's verdict is its last mark not withdrawn.

The review order: the review band first, then the audit, alternating between keep and drop. Within each
decision the order is a fixed random permutation (seeded by the run's name), so whatever prefix a user gets
through is a simple random sample of that decision, and the audit's estimates (audit.py) are unbiased
whatever the decisions' sizes; an estimate for the whole run weighs each decision by its size. Marks made
on pictures picked by hand (the browse view) count for apply and learn, not for the estimates.
"""

from __future__ import annotations

import hashlib
import random
import time
from dataclasses import dataclass

from mona_pipeline.sort.journal import Journal, from_column, to_column

VERDICTS = ("yes", "no")  # she is there | she is not
AUDITED = ("review", "keep", "drop")  # the decisions a review looks at, in the order it asks
AUDIT_SAMPLE = 500  # per decision (keep, drop): the audit asks for at most this many of each


class VerdictError(ValueError):
    """A verdict other than yes or no, or for a picture the run does not hold."""


@dataclass(frozen=True)
class Row:
    """One journal row as a review sees it."""

    item_id: str
    name: str
    source: str
    score: float | None
    decision: str
    action: str
    destination: str | None
    status: str
    box: str | None
    target: str | None


def rows(journal: Journal, target: str | None = None) -> list[Row]:
    """The run's rows that a review can judge (kept, review band, dropped), in item order."""
    where = "decision IN ('keep', 'review', 'drop')"
    arguments: tuple = ()
    if target is not None and "target" in journal.columns:
        where += " AND target = ?"
        arguments = (to_column(target),)
    target_column = "target" if "target" in journal.columns else "NULL AS target"
    box_column = "box" if "box" in journal.columns else "NULL AS box"
    with journal.lock:
        found = journal.connection.execute(
            f"SELECT item_id, name, source, score, decision, action, destination, status, {box_column}, "
            f"{target_column} FROM entries WHERE {where} ORDER BY item_id", arguments).fetchall()
    return [Row(*(from_column(value) for value in row)) for row in found]


@dataclass(frozen=True)
class RunRows:
    """One target's judgeable rows, read once and indexed the ways a review page asks for them.

    A verdict never changes them; a file operation (apply, an undo from another process) does, and the
    journal's `PRAGMA data_version` (which moves when another connection commits) says when to read again
    (`fresh`). So a keypress costs the verdicts, not a read of every row of a run of a million pictures.
    """

    target: str | None
    version: int
    by_id: dict[str, Row]
    by_decision: dict[str, list[Row]]  # each decision's rows, highest score first

    @classmethod
    def read(cls, journal: Journal, target: str | None = None) -> "RunRows":
        version = data_version(journal)
        found = rows(journal, target)
        by_decision = {decision: sorted((row for row in found if row.decision == decision),
                                        key=lambda row: -(row.score or 0.0)) for decision in AUDITED}
        return cls(target, version, {row.item_id: row for row in found}, by_decision)

    def fresh(self, journal: Journal) -> bool:
        return data_version(journal) == self.version


def data_version(journal: Journal) -> int:
    """SQLite's counter of commits by other connections to the journal (ours never moves it)."""
    with journal.lock:
        return int(journal.connection.execute("PRAGMA data_version").fetchone()[0])


def targets(journal: Journal) -> list[str | None]:
    """The run's characters: [None] for a run with one model, else each target's name."""
    if "target" not in journal.columns:
        return [None]
    with journal.lock:
        names = [from_column(row[0]) for row in journal.connection.execute(
            "SELECT DISTINCT target FROM entries WHERE target IS NOT NULL ORDER BY target")]
    return names or [None]


def mark(journal: Journal, item_id: str, verdict: str, queued: bool) -> None:
    """Record a verdict on one row, durably, before returning.

    Raises:
        VerdictError: the verdict is not yes or no, or the run has no such row.
    """
    if verdict not in VERDICTS:
        raise VerdictError(f"verdict {verdict!r}: use one of {', '.join(VERDICTS)}")
    if journal.get(item_id) is None:
        raise VerdictError(f"the run has no picture {item_id!r}")
    with journal.lock, journal.connection:
        journal.connection.execute("INSERT INTO verdicts (item_id, verdict, queued, time) VALUES (?, ?, ?, ?)",
                                   (to_column(item_id), verdict, int(queued), time.time()))


def withdraw_last(journal: Journal) -> str | None:
    """Take back the last mark not yet withdrawn (the page's `u`). Returns its row's item id, or None."""
    with journal.lock, journal.connection:
        last = journal.connection.execute(
            "SELECT seq, item_id FROM verdicts WHERE withdrawn = 0 ORDER BY seq DESC LIMIT 1").fetchone()
        if last is None:
            return None
        journal.connection.execute("UPDATE verdicts SET withdrawn = 1 WHERE seq = ?", (last["seq"],))
    return from_column(last["item_id"])


def current(journal: Journal, queued_only: bool = False) -> dict[str, str]:
    """Each judged row's verdict: its last mark not withdrawn (only marks made in the review order, if asked)."""
    if "verdicts" not in _tables(journal):  # a journal from before reviews, opened read-only
        return {}
    with journal.lock:
        found = journal.connection.execute(
            "SELECT item_id, verdict, queued FROM verdicts WHERE seq IN (SELECT MAX(seq) FROM verdicts "
            "WHERE withdrawn = 0 GROUP BY item_id)").fetchall()
    found = [(item_id, verdict) for item_id, verdict, queued in found if queued or not queued_only]
    return {from_column(item_id): verdict for item_id, verdict in found}


def _tables(journal: Journal) -> set[str]:
    with journal.lock:
        return {row[0] for row in journal.connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def order_seed(journal: Journal) -> str:
    """The seed of a run's review order: fixed for the run, so every tab and every session asks the same."""
    info = journal.info()
    return hashlib.sha256(f"{journal.path.parent.name}|{info.get('source', '')}".encode()).hexdigest()


def review_queue(journal: Journal, target: str | None = None, sample: int = AUDIT_SAMPLE) -> list[str]:
    """The order the page asks in: every review-band row, then up to `sample` kept and `sample` dropped rows,
    alternating (keep, drop, keep, ...); each decision in a fixed random order of its own (see the module)."""
    by_decision: dict[str, list[str]] = {decision: [] for decision in AUDITED}
    for row in rows(journal, target):
        by_decision[row.decision].append(row.item_id)
    rng = random.Random(order_seed(journal) + (target or ""))
    for decision in AUDITED:
        rng.shuffle(by_decision[decision])
    keep, drop = by_decision["keep"][:sample], by_decision["drop"][:sample]
    audit = [item for pair in zip(keep, drop) for item in pair]
    audit += keep[len(drop):] + drop[len(keep):]
    return by_decision["review"] + audit
