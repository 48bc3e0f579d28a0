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


# ---------------------------------------------------------------- calibration


def logit(scores: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    """log(p / (1 - p)), with p kept off 0 and 1."""
    p = np.clip(np.asarray(scores, float), eps, 1 - eps)
    return np.log(p) - np.log1p(-p)


def temper(scores: np.ndarray, temperature: float) -> np.ndarray:
    """Temperature scaling of two-class probabilities: sigmoid(logit(p) / T); T > 1 softens, T < 1 sharpens."""
    return 1.0 / (1.0 + np.exp(-logit(scores) / temperature))


def fit_temperature(truth: np.ndarray, scores: np.ndarray) -> float:
    """The temperature T minimising the cross-entropy of temper(scores, T) against Platt's targets.

    A one-parameter fit (Guo et al. 2017, "On calibration of modern neural networks"): it never changes
    the ranking of pictures, only how confident the scores are. The targets are Platt's (1999) rather than
    0 and 1: (N+ + 1) / (N+ + 2) for the N+ positives and 1 / (N- + 2) for the N- negatives. On a small
    split that the model separates, the plain likelihood keeps rising as T falls, and the fit sharpened
    every score to 0 or 1 (a demo model's T went from 0.29 to 0.05 after one review round, and most
    look-alikes then scored above 0.95); with these targets the optimum stays finite, and on a large split
    they are 0 and 1 in effect. Searched on a log grid, then refined.
    """
    truth = np.asarray(truth, bool)
    z = logit(scores)
    positives, negatives = int(truth.sum()), int((~truth).sum())
    target = np.where(truth, (positives + 1) / (positives + 2), 1 / (negatives + 2))

    def cross_entropy(temperature: float) -> float:
        p = np.clip(1.0 / (1.0 + np.exp(-z / temperature)), 1e-12, 1 - 1e-12)
        return float(-np.mean(target * np.log(p) + (1 - target) * np.log1p(-p)))

    grid = np.exp(np.linspace(np.log(0.05), np.log(50.0), 121))
    best = grid[int(np.argmin([cross_entropy(t) for t in grid]))]
    fine = best * np.exp(np.linspace(-0.06, 0.06, 61))  # one grid step either side
    return float(fine[int(np.argmin([cross_entropy(t) for t in fine]))])


def reliability(truth: np.ndarray, scores: np.ndarray, bins: int = 10) -> dict:
    """Reliability diagram data and expected calibration error (ECE).

    Returns:
        {"bins": [{"low", "high", "pictures", "mean_score", "target_rate"}...], "ece": float}: ECE is the
        picture-weighted mean of |target rate - mean score| over the bins; 0 = scores mean what they say.
    """
    truth, scores = np.asarray(truth, bool), np.asarray(scores, float)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(scores, edges[1:-1], right=False), 0, bins - 1)
    rows, ece = [], 0.0
    for k in range(bins):
        inside = index == k
        count = int(inside.sum())
        row = {"low": float(edges[k]), "high": float(edges[k + 1]), "pictures": count,
               "mean_score": float(scores[inside].mean()) if count else None,
               "target_rate": float(truth[inside].mean()) if count else None}
        if count:
            ece += count / len(scores) * abs(row["target_rate"] - row["mean_score"])
        rows.append(row)
    return {"bins": rows, "ece": float(ece)}
