"""How right was the sort, on your archive: estimates from the pictures a review checked.

    audit = estimate(journal)            # per decision: how many, how many checked, the share showing her
    audit.lines()                        # "of 2,341 kept, about 96% show her (48 of 50 checked; 86-99%)"
    audit.suggestion                     # the threshold that reaches the target precision on your scores

Only marks made in the review order count (verdicts.py): within each decision that order is random, so the
share of checked pictures that show her estimates the decision's share without bias. The interval is the
95% Wilson score interval (no finite-population correction: it errs wide when most of a decision is checked).
The suggested threshold weighs each checked picture by its decision's size over the pictures checked in it
(a stratified estimate): the precision of "score >= t" over the whole run, for every t among the checked
scores; the lowest t that reaches the target precision with at least `MIN_CHECKED` checked pictures at or
above it is suggested, and none while fewer have been checked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from mona_pipeline.review.verdicts import AUDITED, current, rows
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
            text += f": about {round(self.share * self.size):,} pictures of {target} missed"
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


def estimate(journal: Journal, target: str | None = None, target_precision: float = 0.95) -> Audit:
    """The audit of a run (of one target's rows in a run with several) from its verdicts so far."""
    judged = current(journal)
    queued = current(journal, queued_only=True)
    run_rows = rows(journal, target)
    sizes = {decision: 0 for decision in AUDITED}
    checked: dict[str, list[tuple[float, bool]]] = {decision: [] for decision in AUDITED}
    for row in run_rows:
        sizes[row.decision] += 1
        if row.item_id in queued:
            checked[row.decision].append((row.score or 0.0, queued[row.item_id] == "yes"))
    rates = {decision: Rate(decision, sizes[decision], len(checked[decision]),
                            sum(shows for _, shows in checked[decision])) for decision in AUDITED}
    name = target or journal.info().get("target") or "the target"
    ids = {row.item_id for row in run_rows}
    hand = sum(1 for item_id in judged if item_id in ids and item_id not in queued)
    notes = [f"{hand} marked by hand outside the review order: applied and learned, not counted above"] if hand else []
    return Audit(name, rates, target_precision, suggest(checked, sizes, target_precision),
                 sum(1 for item_id in judged if item_id in ids), marked_by_hand=hand, notes=notes)


def suggest(checked: dict[str, list[tuple[float, bool]]], sizes: dict[str, int],
            target_precision: float) -> Suggestion:
    """The lowest score cut whose stratified precision estimate reaches the target (see the module)."""
    weighted = sorted(((score, shows, sizes[decision] / len(samples))
                       for decision, samples in checked.items() for score, shows in samples), reverse=True)
    best = None
    showing = total = 0.0
    for count, (score, shows, weight) in enumerate(weighted, start=1):
        showing, total = showing + weight * shows, total + weight
        last_of_score = count == len(weighted) or weighted[count][0] != score
        if last_of_score and count >= MIN_CHECKED_ABOVE and showing / total >= target_precision:
            best = (score, showing / total, count)
    if best is None:
        return Suggestion(None, None, 0, f"no threshold suggested yet: no cut reaches {target_precision:.0%} "
                                         f"precision with {MIN_CHECKED_ABOVE} checked pictures at or above it "
                                         f"({len(weighted)} checked so far)")
    score, precision, count = best
    return Suggestion(score, precision, count, f"suggested threshold {score:.3f}: about {precision:.0%} precision "
                                               f"on this archive ({count} checked pictures at or above it)")
