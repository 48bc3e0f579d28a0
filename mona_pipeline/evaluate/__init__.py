"""evaluate: the paper's tables for the three-stage model and the no-curriculum baseline.

    python -m flows.evaluate             # the DVC stage
    mona evaluate --labels DIR           # any labelled folder: DIR/labels.csv with path,target[,kind]

Pictures are scored through the same streaming path as `mona sort` (`inference.score_stream`), so a sort
at the same threshold decides the same. Two sets: the stage-3 validation split (raw pictures, from the
manifest) and the labelled random archive (data/test). Writes reports/metrics.json (the DVC metrics),
reports/evaluation/ (evaluation.md, figures, threshold sweeps, per-picture scores).

The package, one job a module: run.py (the stage), sets.py (the labelled sets and a model's scores on
them), results.py (`SetResult` and the metrics files' numbers), report.py (the Markdown), paths.py
(where it writes); the figures are `figures.py`'s. Names load on first use (PEP 562), so reading a
report's paths loads no model code.
"""

import importlib

_HOMES = {"Evaluation": "run", "MODELS": "paths", "STAGES": "run", "run_evaluate": "run",
          "REPORTS_DIR": "paths", "REPORT_NAME": "paths", "TABLE_NAME": "paths", "scores_path": "paths",
          "LabelledSet": "sets", "SetScores": "sets", "read_labelled_folder": "sets", "score_set": "sets",
          "score_models": "sets",
          "SetResult": "results", "evaluate_set": "results", "tiling_effect": "results"}

__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
