"""What `make demo` prints at the end: the paper-style table and where everything is.

    python -m mona_pipeline.summary
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(reports: Path = Path("reports")) -> int:
    evaluation = reports / "evaluation" / "evaluation.md"
    if not evaluation.is_file():
        print(f"no evaluation report at {evaluation}: run `dvc repro` first", file=sys.stderr)
        return 1
    print(evaluation.read_text())
    print(f"Full report: {evaluation}; DVC metrics: {reports / 'metrics.json'} (`dvc metrics show`); "
          f"training curves: models/<stage>/curves.png (`dvc plots show`).")
    sort_summary = reports / "demo_sort" / "summary.json"
    if sort_summary.is_file():
        summary = json.loads(sort_summary.read_text())
        print(f"\nDemo sort of {summary['source']}: {summary['counts']}")
        print(f"Kept pictures: {summary['kept_dir']}\nContact sheet: {summary['report']}\nJournal: {summary['journal']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
