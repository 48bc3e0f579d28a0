"""What `make demo` prints at the end: the paper-style table, the demo sort, and whether they agree.

    python -m mona_pipeline.summary [--sort-run sorted/demo/runs/demo]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from mona_pipeline.journal import Journal


def sort_agreement(scores_csv: Path, run_dir: Path, test_dir: Path) -> tuple[int, int]:
    """How many pictures got the same keep/not-keep decision from evaluate (at the run's P) and from the sort."""
    with Journal(run_dir / "journal.sqlite") as journal:
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reports", type=Path, default=Path("reports"))
    parser.add_argument("--sort-run", type=Path, default=None)
    parser.add_argument("--test-dir", type=Path, default=Path("data/test"))
    args = parser.parse_args(argv)
    evaluation = args.reports / "evaluation" / "evaluation.md"
    if not evaluation.is_file():
        print(f"no evaluation report at {evaluation}: run `dvc repro` first", file=sys.stderr)
        return 1
    print(evaluation.read_text())
    print(f"Report: {evaluation}; DVC metrics: {args.reports / 'metrics.json'} (`dvc metrics show`); "
          f"training curves: models/<stage>/curves.png (`dvc plots show`).")
    if args.sort_run and (args.sort_run / "summary.json").is_file():
        summary = json.loads((args.sort_run / "summary.json").read_text())
        print(f"\nDemo sort of {summary['source']}: {summary['counts']}")
        print(f"Kept pictures: {summary['kept_dir']}\nContact sheet: {summary['report']}\nJournal: {summary['journal']}")
        same, total = sort_agreement(args.reports / "evaluation" / "scores_three_stage_test.csv", args.sort_run,
                                     args.test_dir)
        print(f"Sort and evaluate agree on {same} of {total} pictures at P = {summary['confidence']}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
