"""Where the evaluation writes: a module of its own, so that `mona summary` reads the reports without
loading the model code."""

from __future__ import annotations

from pathlib import Path

REPORTS_DIR, REPORT_NAME, TABLE_NAME = Path("reports/evaluation"), "evaluation.md", "metrics_table.json"
MODELS = {"three_stage": Path("models/target"), "baseline": Path("models/baseline")}  # what evaluate scores


def evaluated_name(model: Path) -> str | None:
    """The evaluation's name for a model folder (three_stage, baseline), or None if it scores no such model."""
    return next((name for name, folder in MODELS.items() if Path(model).resolve() == folder.resolve()), None)


def scores_path(reports_dir: Path, model_name: str, set_name: str) -> Path:
    """Where a model's per-picture scores on a set go (CSV: path, target, kind, score)."""
    return reports_dir / f"scores_{model_name}_{set_name}.csv"
