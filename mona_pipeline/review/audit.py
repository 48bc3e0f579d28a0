"""How right was the sort, on your archive: estimates from the pictures a review checked.

    audit = estimate(journal)            # per decision: how many, how many checked, the share showing her
    audit.lines()                        # "of 2,341 kept, about 96% show her (48 of 50 checked; 86-99%)"
    audit.suggestion                     # the threshold that reaches the target precision on your scores

Only marks made in the review order count (verdicts.py): within each decision that order is random, so the
share of checked pictures that show her estimates the decision's share without bias. The interval is the
95% Wilson score interval (no finite-population correction: it errs wide when most of a decision is checked).
The suggested threshold comes from a stratified estimate of the precision of "score >= t" over the whole run,
for every t among the checked scores: each decision's pictures at or above t (counted exactly) times the share
showing her among its checked ones at or above t. The lowest t that reaches the target precision is suggested,
once at least MIN_CHECKED_ABOVE checked pictures stand at or above it and every decision it takes from has
MIN_CHECKED of them checked (or all); none before.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

from mona_pipeline.review.verdicts import AUDITED, RunRows, current
from mona_pipeline.sort.journal import Journal

Z_95 = 1.959964  # the normal quantile of a two-sided 95% interval
MIN_CHECKED = 10  # fewer checked pictures in a decision: too few to tell
MIN_CHECKED_ABOVE = 20  # a suggested threshold stands on at least this many checked pictures at or above it


def wilson(successes: int, trials: int, z: float = Z_95) -> tuple[float, float]:
    """The Wilson score interval of a binomial share (low, high); (0, 1) for no trials."""
    if trials == 0:
        return 0.0, 1.0
    share = successes / trials
    centre = (share + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z / (1 + z * z / trials) * math.sqrt(share * (1 - share) / trials + z * z / (4 * trials * trials))
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass(frozen=True)
class Rate:
    """One decision's share of pictures that show her, from its checked pictures."""

    decision: str
    size: int  # pictures with this decision
    checked: int  # of them, checked in the review order
    showing: int  # of those, marked "she is there"

    @property
    def share(self) -> float | None:
        return self.showing / self.checked if self.checked else None

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.showing, self.checked)

    @property
    def enough(self) -> bool:
        return self.checked >= min(MIN_CHECKED, self.size) and self.checked > 0

    def line(self, target: str) -> str:
        """`of 2,341 kept, about 96% show mona (48 of 50 checked; 86-99%)`, or why it cannot tell yet."""
        word = {"keep": "kept", "review": "in review", "drop": "dropped"}[self.decision]
        if not self.enough:
            return (f"of {self.size:,} {word}: too few checked to tell ({self.checked} of {self.size:,}; "
                    f"{min(MIN_CHECKED, self.size)} needed)")
        low, high = self.interval  # shown rounded outwards: the words never claim a narrower interval
        text = (f"of {self.size:,} {word}, about {self.share:.0%} show {target} ({self.showing} of {self.checked} "
                f"checked; {math.floor(low * 100)}-{math.ceil(high * 100)}%)")
        if self.decision == "drop" and self.size:
            text += (f": about {round(self.share * self.size):,} pictures of {target} missed (up to "
                     f"{math.ceil(high * self.size):,})")
        return text


@dataclass(frozen=True)
class Suggestion:
    threshold: float | None  # None: no cut reaches the target with enough checked pictures
    precision: float | None  # the estimated precision at that cut
    checked_above: int  # checked pictures at or above it
    reason: str  # what it means, in words


@dataclass(frozen=True)
class Audit:
    target: str
    rates: dict[str, Rate]
    target_precision: float
    suggestion: Suggestion
    reviewed: int  # rows with a verdict (in the review order or not)
    queue: int = 0  # the review order's length, set by the page
    marked_by_hand: int = 0  # verdicts on pictures picked outside the review order (not in the estimates)
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [self.rates[decision].line(self.target) for decision in ("keep", "review", "drop")
                if self.rates[decision].size] + [self.suggestion.reason] + self.notes


def estimate(journal: Journal, target: str | None = None, target_precision: float = 0.95,
             run_rows: RunRows | None = None) -> Audit:
    """The audit of a run (of one target's rows in a run with several) from its verdicts so far.

    Args:
        run_rows: the target's rows as the page holds them (read from the journal when not given).
    """
    judged = current(journal)
    queued = current(journal, queued_only=True)
    run_rows = run_rows or RunRows.read(journal, target)
    scores = {decision: [row.score or 0.0 for row in reversed(found)]  # lowest first
              for decision, found in run_rows.by_decision.items()}
    checked: dict[str, list[tuple[float, bool]]] = {decision: [] for decision in AUDITED}
    for item_id, verdict in queued.items():
        row = run_rows.by_id.get(item_id)
        if row is not None:
            checked[row.decision].append((row.score or 0.0, verdict == "yes"))
    rates = {decision: Rate(decision, len(scores[decision]), len(checked[decision]),
                            sum(shows for _, shows in checked[decision])) for decision in AUDITED}
    name = target or journal.info().get("target") or "the target"
    hand = sum(1 for item_id in judged if item_id in run_rows.by_id and item_id not in queued)
    notes = [f"{hand} marked by hand outside the review order: applied and learned, not counted above"] if hand else []
    return Audit(name, rates, target_precision, suggest(checked, scores, target_precision),
                 sum(1 for item_id in judged if item_id in run_rows.by_id), marked_by_hand=hand, notes=notes)


def suggest(checked: dict[str, list[tuple[float, bool]]], scores: dict[str, list[float]],
            target_precision: float) -> Suggestion:
    """The lowest score cut whose estimated precision over the whole run reaches the target (see the module).

    For a cut t, each decision's pictures at or above t (counted exactly, from `scores`) are weighted by the
    share showing her among its checked pictures at or above t, a random sample of them. A cut is not judged
    while any decision it takes pictures from has fewer than MIN_CHECKED (or all) of them checked: one
    checked kept picture must not speak for five hundred.
    """
    ordered = {decision: sorted(values) for decision, values in scores.items()}  # linear when already sorted
    best = None
    cuts = sorted({score for samples in checked.values() for score, _ in samples}, reverse=True)
    for cut in cuts:
        total = showing = used = 0.0
        judged = True
        for decision, values in ordered.items():
            above = len(values) - bisect.bisect_left(values, cut)
            if not above:
                continue
            samples = [shows for score, shows in checked.get(decision, []) if score >= cut]
            if len(samples) < min(MIN_CHECKED, above):
                judged = False
                break
            total, showing, used = total + above, showing + above * sum(samples) / len(samples), used + len(samples)
        if judged and total and used >= MIN_CHECKED_ABOVE and showing / total >= target_precision:
            best = (cut, showing / total, int(used))
    checked_count = sum(len(samples) for samples in checked.values())
    if best is None:
        return Suggestion(None, None, 0, f"no threshold suggested yet: no cut reaches {target_precision:.0%} "
                                         f"precision with {MIN_CHECKED_ABOVE} checked pictures at or above it and "
                                         f"{MIN_CHECKED} of each decision it takes from ({checked_count} checked "
                                         f"so far)")
    score, precision, count = best
    return Suggestion(score, precision, count, f"suggested threshold {score:.3f}: about {precision:.0%} precision "
                                               f"on this archive ({count} checked pictures at or above it)")
