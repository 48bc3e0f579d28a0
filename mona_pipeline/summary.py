"""What `make demo` shows at the end: the paper-style table, the demo sort, and whether the two agree.

    mona summary sorted/demo/runs/demo --evaluation
"""

from __future__ import annotations

import csv
from pathlib import Path

from mona_pipeline.errors import UserError
from mona_pipeline.evaluate.paths import REPORT_NAME, evaluated_name, scores_path
from mona_pipeline.sort.journal import JOURNAL_NAME, Journal
from mona_pipeline.sort.results import SUMMARY_NAME, SortSummary


def sort_agreement(scores_csv: Path, run_dir: Path) -> tuple[int, int]:
    """How many pictures got the same keep/not-keep decision from evaluate (at the run's P) and from the sort."""
    with Journal(run_dir / JOURNAL_NAME, read_only=True) as journal:
        threshold = float(journal.info()["confidence"])
        decided = {Path(e.source).resolve(): e.decision == "keep" for e in journal.entries()}
    same = total = 0
    with open(scores_csv, newline="") as handle:
        for row in csv.DictReader(handle):
            path = Path(row["path"]).resolve()
            if path in decided and row["score"]:
                total += 1
                same += (float(row["score"]) >= threshold) == decided[path]
    return same, total


def demo_summary(reports_dir: Path, sort_run: Path | None = None, set_name: str = "test") -> str:
    """The evaluation report, where its parts are, and (with a sort run) whether the sort agrees with the
    evaluation of the model it used.

    Raises:
        UserError: there is no evaluation report yet.
    """
    evaluation = reports_dir / REPORT_NAME
    if not evaluation.is_file():
        raise UserError(f"no evaluation report at {evaluation}: run `dvc repro` first")
    lines = [evaluation.read_text(),
             f"Report: {evaluation}; training curves: models/<stage>/curves.png (`dvc plots show`)."]
    if sort_run is not None and (sort_run / SUMMARY_NAME).is_file():
        summary = SortSummary.model_validate_json((sort_run / SUMMARY_NAME).read_text())
        model_name = evaluated_name(Path(summary.model))
        same, total = (0, 0) if model_name is None else sort_agreement(
            scores_path(reports_dir, model_name, set_name), sort_run)
        if model_name is None:
            lines.append(f"\nThe run's model {summary.model} is not one the evaluation scored: nothing to compare.")
        else:
            lines.append(f"\nSort ({summary.model}) and evaluate ({model_name}) agree on {same} of {total} pictures "
                         f"at P = {summary.confidence}." if total else
                         f"\nThe run shares no picture with the evaluation's {set_name} set: nothing to compare.")
        if summary.tiling.mode != "off":
            lines.append(f"Tiling {summary.tiling.mode}: {summary.found_in_tiles} kept or review pictures were found "
                         f"in a tile (outlined in the contact sheet; boxes in the journal and summary.json).")
    return "\n".join(lines)
