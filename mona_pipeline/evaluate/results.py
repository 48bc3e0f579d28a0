"""One model's results on one labelled set, as a typed `SetResult`, and the numbers DVC keeps of them.

    result = evaluate_set(truth, scores, kinds, threshold=0.95, target_precision=0.95, parts=parts)
    result.precision, result.lookalike_false_alarms, result.by_part["held_out"]["recall"]
    headline({"three_stage": {"test": result}})     # reports/metrics.json: a few numbers a model
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mona_pipeline.config import TilingParams
from mona_pipeline.evaluate.sets import SIZE_CLASSES, LabelledSet, SetScores, size_class
from mona_pipeline.metrics import confusion, reliability, roc_auc, threshold_for_precision
from mona_pipeline.trained import METADATA_FILE, read_metadata

AUTO_FROM_SWEEP = (0.0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3)
HEADLINE = ("f1", "precision", "recall", "recall_held_out", "recall_small", "lookalike_false_alarms", "ece")


@dataclass
class SetResult:
    """Everything the report and the metrics files say of one model on one set, at its threshold."""

    # the paper's table (metrics.confusion) at `threshold`; the intervals are 95% Wilson intervals
    pictures: int
    target_pictures: int
    flagged: int
    missed: int
    false_alarms: int
    errors: int
    recall: float
    accuracy: float
    precision: float
    f1: float
    recall_ci: tuple[float, float]
    precision_ci: tuple[float, float]
    accuracy_ci: tuple[float, float]
    threshold: float
    unreadable: int
    roc_auc: float
    calibration: dict  # metrics.reliability: bins and ECE
    false_alarms_by_kind: dict[str, int]  # lookalike | other | none
    threshold_for_precision: dict  # the lowest threshold reaching the wanted precision on this set
    by_part: dict | None = None  # results_by_part, for a set with parts (the test archive)
    tiling: dict = field(default_factory=dict)  # tiling_effect: off / configured / always, the auto_from sweep
    batch_pictures_per_second: float | None = None
    temperature: float | None = None

    @property
    def ece(self) -> float:
        return self.calibration["ece"]

    @property
    def lookalike_false_alarms(self) -> int:
        return self.false_alarms_by_kind["lookalike"]

    @property
    def other_false_alarms(self) -> int:
        """False alarms on pictures of other characters or of no one."""
        return self.false_alarms_by_kind["other"] + self.false_alarms_by_kind["none"]

    def as_dict(self) -> dict:
        """Every field and property, for reports/evaluation/metrics_full.json."""
        return dataclasses.asdict(self) | {"ece": self.ece, "lookalike_false_alarms": self.lookalike_false_alarms}


def evaluate_set(truth: np.ndarray, scores: np.ndarray, kinds: list[str], threshold: float,
                 target_precision: float, parts: list[str] | None = None) -> SetResult:
    """Everything the report needs for one model on one set; unreadable pictures count as not flagged."""
    readable = ~np.isnan(scores)
    flagged = np.where(readable, scores, 0.0) >= threshold
    kinds_array = np.array(kinds)
    best = threshold_for_precision(truth[readable], scores[readable], target_precision)
    return SetResult(
        **confusion(truth, flagged), threshold=threshold, unreadable=int((~readable).sum()),
        roc_auc=roc_auc(truth[readable], scores[readable]), calibration=reliability(truth[readable], scores[readable]),
        false_alarms_by_kind={kind: int((flagged & ~truth & (kinds_array == kind)).sum())
                              for kind in ("lookalike", "other", "none")},
        threshold_for_precision={"precision_wanted": target_precision, **(
            {k: best[k] for k in ("threshold", "precision", "recall", "accuracy")} if best else {"threshold": None})},
        by_part=results_by_part(truth, flagged, parts) if parts is not None else None)


def results_by_part(truth: np.ndarray, flagged: np.ndarray, parts: list[str]) -> dict:
    """Recall, false alarms and pictures per part of the archive, and over all held-out parts together."""
    parts_array = np.array(parts)
    # in_distribution first, then the held-out parts by name
    ordered = sorted(dict.fromkeys(parts), key=lambda part: (part != "in_distribution", part))
    groups = {part: parts_array == part for part in ordered}
    if len(groups) > 1:
        groups["held_out"] = parts_array != "in_distribution"
    result = {}
    for part, inside in groups.items():
        counts = confusion(truth[inside], flagged[inside])
        result[part] = {k: counts[k] for k in ("pictures", "target_pictures", "recall", "recall_ci", "false_alarms",
                                                "precision")}
    return result


def results_by_size(truth: np.ndarray, flagged: np.ndarray, heights: list[float | None]) -> dict:
    """Recall per size of the target's figure (SIZE_CLASSES), over the pictures that show it."""
    classes = np.array([size_class(h) for h in heights], object)
    result = {}
    for name, _, _ in SIZE_CLASSES:
        inside = truth & (classes == name)
        if inside.any():
            counts = confusion(truth[inside], flagged[inside])
            result[name] = {k: counts[k] for k in ("target_pictures", "recall", "recall_ci")}
    return result


def tiling_effect(labelled: LabelledSet, set_scores: SetScores, tiling: TilingParams, threshold: float) -> dict:
    """Precision, recall and recall by figure size without tiles, with the configured mode and with tiles
    for every picture: what tiling buys and costs, from one scoring pass."""
    effect = {}
    for mode in dict.fromkeys(("off", tiling.mode, "always")):
        variant = tiling.model_copy(update={"mode": mode})
        flagged = np.nan_to_num(set_scores.pooled(variant, threshold), nan=0.0) >= threshold
        counts = confusion(labelled.truth, flagged)
        row = {k: counts[k] for k in ("precision", "recall", "f1", "false_alarms")}
        row["tiled_share"] = set_scores.tiled_share(variant, threshold)
        if _has_heights(labelled):
            row["by_size"] = results_by_size(labelled.truth, flagged, labelled.target_heights)
        effect[mode] = row
    effect["auto_from_sweep"] = _auto_from_sweep(labelled, set_scores, tiling, threshold)
    return effect


def _has_heights(labelled: LabelledSet) -> bool:
    return bool(labelled.target_heights) and any(h is not None for h in labelled.target_heights)


def _auto_from_sweep(labelled: LabelledSet, set_scores: SetScores, tiling: TilingParams, threshold: float) -> list:
    """The auto rule at other floors: the share of pictures tiled (the cost) against what tiling finds."""
    rows = []
    for floor in AUTO_FROM_SWEEP:
        variant = tiling.model_copy(update={"mode": "auto", "auto_from": floor})
        flagged = np.nan_to_num(set_scores.pooled(variant, threshold), nan=0.0) >= threshold
        counts = confusion(labelled.truth, flagged)
        row = {"auto_from": floor, "tiled_share": set_scores.tiled_share(variant, threshold),
               "precision": counts["precision"], "recall": counts["recall"]}
        if _has_heights(labelled):
            row["recall_small"] = results_by_size(labelled.truth, flagged, labelled.target_heights).get(
                "small", {}).get("recall")
        rows.append(row)
    return rows


# ---------------------------------------------------------------- what DVC and the tables keep


def main_numbers(result: SetResult) -> dict:
    """Per model and set, the main numbers (reports/evaluation/metrics_table.json; metrics_full.json has all)."""
    numbers = {key: getattr(result, key) for key in ("accuracy", "precision", "recall", "f1", "false_alarms", "missed",
                                                      "pictures", "roc_auc", "threshold", "ece",
                                                      "lookalike_false_alarms")}
    numbers |= {f"recall_{part}": result.by_part[part]["recall"] for part in ("in_distribution", "held_out")
                if part in (result.by_part or {})}
    return numbers | _tiling_numbers(result.tiling)


def _tiling_numbers(effect: dict) -> dict:
    """recall_small (the configured tiling) and the same numbers without tiles, for the metrics table."""
    if not effect:
        return {}
    modes = [mode for mode in effect if mode != "auto_from_sweep"]
    chosen = next((mode for mode in modes if mode not in ("off", "always")), "always" if len(modes) > 1 else "off")
    row = {"tiled_share": effect[chosen]["tiled_share"], "precision_untiled": effect["off"]["precision"],
           "recall_untiled": effect["off"]["recall"]}
    if "small" in effect[chosen].get("by_size", {}):
        row["recall_small"] = effect[chosen]["by_size"]["small"]["recall"]
        row["recall_small_untiled"] = effect["off"]["by_size"]["small"]["recall"]
    return row


def headline(results: dict[str, dict[str, SetResult]], stages: dict[str, Path]) -> dict:
    """reports/metrics.json: the test archive's HEADLINE numbers per model, then each trained stage's kept
    epoch, so that `dvc exp show` and `dvc metrics show` begin with what matters."""
    tested = {model: main_numbers(sets["test"]) for model, sets in results.items() if "test" in sets}
    numbers = {model: {key: round(row[key], 4) for key in HEADLINE if key in row} for model, row in tested.items()}
    training = training_numbers(stages)
    return numbers | ({"train": training} if training else {})


def training_numbers(stages: dict[str, Path]) -> dict:
    """Per trained stage, its kept epoch's train and validation accuracy (from its metadata.json):
    `train.gender.val_accuracy`, ... in `dvc exp show`."""
    found = {}
    for stage, folder in stages.items():
        if (folder / METADATA_FILE).is_file():
            kept = read_metadata(folder).metrics
            found[stage] = {key: round(kept[key], 4) for key in ("accuracy", "val_accuracy") if key in kept}
    return found
