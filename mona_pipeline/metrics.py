"""Detection metrics as the paper reports them, plus precision, F1, ROC AUC and threshold sweeps.

All functions take `truth` (bool per picture: shows the target) and `scores`
(probability of the target) as 1-D arrays.
"""

from __future__ import annotations

import math
import statistics

import numpy as np


def confusion(truth: np.ndarray, flagged: np.ndarray) -> dict:
    """The paper's table rows for one decision, plus precision and F1.

    Args:
        truth: bool, the picture shows the target.
        flagged: bool, the model says it does.
    """
    truth, flagged = np.asarray(truth, bool), np.asarray(flagged, bool)
    pictures, targets, flagged_count = len(truth), int(truth.sum()), int(flagged.sum())
    hits = int((truth & flagged).sum())
    missed, false_alarms = targets - hits, flagged_count - hits
    errors = missed + false_alarms
    precision = hits / flagged_count if flagged_count else 0.0
    recall = hits / targets if targets else 0.0
    return {
        "recall_ci": wilson_interval(hits, targets),
        "precision_ci": wilson_interval(hits, flagged_count),
        "accuracy_ci": wilson_interval(pictures - errors, pictures),
        "pictures": pictures,
        "target_pictures": targets,
        "flagged": flagged_count,
        "missed": missed,
        "false_alarms": false_alarms,
        "errors": errors,
        "recall": recall,
        "accuracy": (pictures - errors) / pictures if pictures else 0.0,
        "precision": precision,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
    }


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """95% (z = 1.96) Wilson score interval of a proportion: how far a rate measured on few pictures can be off."""
    if trials == 0:
        return (0.0, 1.0)
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def roc_auc(truth: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve: the chance a random target picture outscores a random other one (ties 1/2)."""
    truth, scores = np.asarray(truth, bool), np.asarray(scores, float)
    positives, negatives = int(truth.sum()), int((~truth).sum())
    if not positives or not negatives:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # Average ranks over ties.
    start = 0
    while start < len(scores):
        end = start
        while end + 1 < len(scores) and sorted_scores[end + 1] == sorted_scores[start]:
            end += 1
        ranks[order[start:end + 1]] = (start + end) / 2.0 + 1.0
        start = end + 1
    return float((ranks[truth].sum() - positives * (positives + 1) / 2.0) / (positives * negatives))


def threshold_sweep(truth: np.ndarray, scores: np.ndarray, thresholds: np.ndarray | None = None) -> list[dict]:
    """Precision, recall, accuracy and F1 at each threshold (score >= threshold is flagged)."""
    if thresholds is None:
        thresholds = np.round(np.arange(0.05, 1.0, 0.01), 2)
    rows = []
    for threshold in thresholds:
        result = confusion(truth, np.asarray(scores) >= threshold)
        rows.append({"threshold": float(threshold), **{k: result[k] for k in
                                                       ("precision", "recall", "accuracy", "f1", "false_alarms", "missed")}})
    return rows


def threshold_for_precision(truth: np.ndarray, scores: np.ndarray, precision: float) -> dict | None:
    """The lowest threshold (so the highest recall) whose precision reaches `precision`, or None.

    Candidate thresholds are the scores themselves, so the answer is exact on these pictures.
    """
    truth, scores = np.asarray(truth, bool), np.asarray(scores, float)
    for threshold in np.unique(scores):
        result = confusion(truth, scores >= threshold)
        if result["flagged"] and result["precision"] >= precision:
            return {"threshold": float(threshold), **result}
    return None


def latency_stats(seconds: list[float]) -> dict:
    """Per-picture time as the paper reports it: min, mean, median, mode (to the millisecond), max."""
    if not seconds:
        return {}
    milliseconds = [round(s * 1000) for s in seconds]
    return {"min_s": min(seconds), "mean_s": statistics.fmean(seconds), "median_s": statistics.median(seconds),
            "mode_s": statistics.mode(milliseconds) / 1000.0, "max_s": max(seconds), "pictures": len(seconds)}
