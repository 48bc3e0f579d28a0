"""The figures the reports show: training curves, precision-recall, reliability, and the worst cases.

    plot_curves(history, Path("models/target/curves.png"), "target: mona vs others")   # train
    plot_precision_recall(curves, Path("reports/evaluation/precision_recall.png"))     # evaluate

Matplotlib draws without a screen (Agg), each figure saved and closed in one `figure` block.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

import numpy as np

from mona_pipeline.metrics import threshold_sweep


@contextlib.contextmanager
def figure(path: Path, columns: int = 1, size: tuple[float, float] = (5.5, 4.5), title: str | None = None) -> Iterator:
    """A figure of `columns` axes, saved to `path` and closed when the block ends; yields the axes (one or a list)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drawn, axes = plt.subplots(1, columns, figsize=size)
    try:
        yield axes
        if title:
            drawn.suptitle(title)
        drawn.tight_layout()
        drawn.savefig(path, dpi=90)
    finally:
        plt.close(drawn)


def plot_curves(history: dict[str, list[float]], path: Path, title: str) -> Path:
    """Accuracy and loss, train vs. validation, as the paper's Figure 5."""
    with figure(path, columns=2, size=(10, 3.6), title=title) as axes:
        for axis, metric in zip(axes, ("accuracy", "loss")):
            axis.plot(history[metric], label="train")
            axis.plot(history[f"val_{metric}"], label="validation")
            axis.set_xlabel("epoch")
            axis.set_title(metric)
            axis.legend()
    return path


def plot_precision_recall(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path) -> Path:
    """One precision-recall curve per (model, set): `curves` maps a name to (truth, scores)."""
    with figure(path) as axis:
        for name, (truth, scores) in curves.items():
            rows = threshold_sweep(truth, scores, np.unique(np.concatenate([[0.0], scores, [1.0]])))
            axis.plot([r["recall"] for r in rows], [r["precision"] for r in rows], label=name)
        axis.set_xlabel("recall")
        axis.set_ylabel("precision")
        axis.set_xlim(0, 1.02)
        axis.set_ylim(0, 1.02)
        axis.legend(loc="lower left")
        axis.set_title("precision-recall, target class")
    return path


def plot_reliability(calibrations: dict[str, tuple[dict, float]], path: Path) -> Path:
    """Reliability diagram: per score bin, the share of pictures that show the target vs the mean score.

    Args:
        calibrations: name -> (metrics.reliability's result, its ECE).
    """
    with figure(path) as axis:
        axis.plot([0, 1], [0, 1], color="grey", linestyle=":", label="calibrated")
        for name, (calibration, ece) in calibrations.items():
            bins = [b for b in calibration["bins"] if b["pictures"]]
            axis.plot([b["mean_score"] for b in bins], [b["target_rate"] for b in bins], marker="o",
                      label=f"{name} (ECE {ece:.3f})")
        axis.set_xlabel("score (mean in bin)")
        axis.set_ylabel("pictures that show the target")
        axis.legend(loc="upper left", fontsize=8)
        axis.set_title("reliability of the scores")
    return path


def render_worst(paths: list[Path], truth: np.ndarray, kinds: list[str], parts: list[str], scores: np.ndarray,
                 threshold: float, path: Path, count: int = 12, boxes: list[str | None] | None = None) -> Path:
    """A contact sheet of what the model gets most wrong: the lowest-scoring missed targets (top row) and
    the highest-scoring false alarms (bottom row), with score, kind and part under each; a false alarm a
    tile raised has that tile outlined."""
    from PIL import Image, ImageDraw

    from mona_pipeline.drawing import draw_box

    readable = ~np.isnan(scores)
    missed = [i for i in np.argsort(np.where(readable, scores, np.inf)) if truth[i] and scores[i] < threshold]
    alarms = [i for i in np.argsort(-np.where(readable, scores, -np.inf)) if not truth[i] and scores[i] >= threshold]
    cell, label_height = 140, 30
    sheet = Image.new("RGB", (count * cell, 2 * (cell + label_height) + 20), (250, 250, 250))
    draw = ImageDraw.Draw(sheet)
    for row, (title, chosen) in enumerate((("missed targets, lowest scores", missed[:count]),
                                           ("false alarms, highest scores", alarms[:count]))):
        top = row * (cell + label_height + 10)
        draw.text((4, top), f"{title} ({len(missed) if row == 0 else len(alarms)} in all)", fill=(0, 0, 0))
        for column, index in enumerate(chosen):
            with Image.open(paths[index]) as picture:
                picture = picture.convert("RGB")
                picture.thumbnail((cell - 4, cell - 14))
                if boxes and boxes[index]:
                    draw_box(picture, boxes[index])
                sheet.paste(picture, (column * cell + 2, top + 12))
            draw.text((column * cell + 2, top + cell), f"{scores[index]:.3f} {kinds[index]}\n{parts[index]}",
                      fill=(120, 0, 0))
    sheet.save(path)
    return path
