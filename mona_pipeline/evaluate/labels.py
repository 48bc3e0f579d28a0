"""The labelled folder's file, defined once: `labels.csv` with the columns path and target (1 / true / yes:
the picture shows the target), optionally kind, part, target_height and characters (`;`-separated).

    rows = read_label_rows(Path("data/test"))       # evaluate's sets, and `mona check`
    shows_target(rows[0])

No model code: `mona check` reads it before any stage runs.
"""

from __future__ import annotations

import csv
from pathlib import Path

from mona_pipeline.errors import UserError

LABELS_NAME = "labels.csv"
TARGET_YES = ("1", "true", "True", "yes")


class LabelsError(UserError, ValueError):
    """labels.csv is missing or lacks its columns; the message says which."""


def read_label_rows(folder: Path) -> list[dict[str, str]]:
    """The rows of folder/labels.csv.

    Raises:
        LabelsError: no labels.csv, or it lacks the columns path and target.
    """
    labels = folder / LABELS_NAME
    if not labels.is_file():
        raise LabelsError(f"no {LABELS_NAME} in {folder} (columns: path,target[,kind])")
    with open(labels, newline="", encoding="utf-8", errors="replace") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or "path" not in rows[0] or "target" not in rows[0]:
        raise LabelsError(f"{labels} needs the columns path and target (0 or 1)")
    return rows


def shows_target(row: dict[str, str]) -> bool:
    return row["target"].strip() in TARGET_YES
