"""What a sort, an undo and a purge report, as typed results (summary.json is a SortSummary's JSON).

    summary = sort_source(request)
    summary.counts["keep"], summary.complete, summary.report
    result = undo_run(run_dir)
    result.restored, result.problems
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict

from mona_pipeline.config import TilingParams

SUMMARY_NAME = "summary.json"  # OUT/runs/<run>/summary.json: what the run's last finished session wrote


class TargetResult(BaseModel):
    """One character of a sort with several models: its model, threshold and the run's pictures per decision."""

    model_config = ConfigDict(frozen=True)

    target: str
    model: str
    confidence: float
    counts: dict[str, int]
    kept_dir: str


class SortSummary(BaseModel):
    """One sort run, as written to OUT/runs/<run>/summary.json and shown by the CLI, the report and Prefect."""

    model_config = ConfigDict(frozen=True)

    source: str
    action: str
    confidence: float
    review_from: float | None
    model: str
    counts: dict[str, int]  # the whole run's pictures per decision (keep, review, drop, unreadable)
    pictures: int
    this_session: dict[str, int]  # what this process decided
    resumed_skipped: int  # already done by an earlier attempt
    already_there: int  # identical pictures already at their destination: nothing done
    copied_not_moved: int  # moves whose source is read-only: copied instead
    skipped: dict[str, int]  # files and folders the source walked past, by reason
    notes: list[str]  # folders left out and why (an earlier sort's OUT inside the source)
    action_failures: int
    problems: list[str]  # what stopped reading early (a folder without permission, a damaged archive)
    unreadable_folders: list[str]
    complete: bool  # every picture accounted for and every file operation done
    seconds: float
    pictures_per_second: float | None
    kept_dir: str
    journal: str
    report: str
    errors: list[tuple[str, str]]  # (picture, why unreadable), the first 200
    tiling: TilingParams
    found_in_tiles: int  # pictures a tile decided this session
    found_in_tiles_sample: list[dict]  # the first of them with "source", "decision", "score", "box"
    targets: list[TargetResult] = []  # a sort with several models: each target's counts (empty with one model;
    # then confidence and model are the one model's, with several the first's and all of them)


@dataclass
class UndoResult:
    """What an undo did: pictures put back, copies and links removed, purged ones it could not restore."""

    restored: int = 0
    removed_copies: int = 0
    purged: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)  # (picture, why it stays where it is)


@dataclass
class PurgeResult:
    """What a purge deleted for good, what was no longer in the trash, and what it would not delete."""

    purged: int = 0
    gone: int = 0  # taken out of the trash by hand: not deleted, not counted
    problems: list[tuple[str, str]] = field(default_factory=list)  # (path, why kept)
