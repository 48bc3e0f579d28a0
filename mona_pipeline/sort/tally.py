"""What one pass of a sort did: counts per decision, skips, failures and samples; chunks' tallies add up.

A Tally crosses processes (a Dask worker's chunk returns one to the flow), so this module needs
no TensorFlow: the flow process and the Dask scheduler import it without the model code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from mona_pipeline.sort.decisions import DECISIONS

FOUND_SAMPLE = 500  # pictures a tile decided, listed in summary.json


@dataclass
class Tally:
    """What one `process` call did; chunks' tallies add up to the run's."""

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(DECISIONS, 0))
    skipped_done: int = 0
    already_there: int = 0  # the identical picture was already at its destination: nothing done
    copied_not_moved: int = 0  # moves whose source cannot be removed (read-only): copied instead
    errors: list[tuple[str, str]] = field(default_factory=list)
    action_failures: int = 0
    problems: list[str] = field(default_factory=list)  # what stopped reading or scoring early
    samples: dict = field(default_factory=dict)  # the contact-sheet samples of this call
    found_in_tiles: int = 0  # pictures a tile decided (kept)
    found_sample: list[dict] = field(default_factory=list)  # the first FOUND_SAMPLE of them, with the box
    targets: dict[str, dict[str, int]] = field(default_factory=dict)  # several models: per target, its decisions

    def count_target(self, target: str, decision: str) -> None:
        self.targets.setdefault(target, dict.fromkeys(DECISIONS, 0))[decision] += 1

    @classmethod
    def merged(cls, tallies: Iterable["Tally"]) -> "Tally":
        total = cls()
        for tally in tallies:
            for decision, count in tally.counts.items():
                total.counts[decision] += count
            total.skipped_done += tally.skipped_done
            total.already_there += tally.already_there
            total.copied_not_moved += tally.copied_not_moved
            total.errors += tally.errors
            total.action_failures += tally.action_failures
            total.problems += tally.problems
            total.found_in_tiles += tally.found_in_tiles
            total.found_sample += tally.found_sample[:FOUND_SAMPLE - len(total.found_sample)]
            for target, counts in tally.targets.items():
                for decision, count in counts.items():
                    total.targets.setdefault(target, dict.fromkeys(DECISIONS, 0))[decision] += count
        return total
