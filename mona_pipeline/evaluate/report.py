"""The evaluation report (reports/evaluation/evaluation.md): the paper's table and what stands behind it.

    markdown = render_report({"three_stage, test": result, ...}, timing, target_precision=0.95)
"""

from __future__ import annotations

from mona_pipeline.evaluate.results import SetResult
from mona_pipeline.evaluate.sets import SIZE_CLASSES
from mona_pipeline.markdown import markdown_table

# The paper's Tables 1-3: (row label, SetResult attribute)
PAPER_ROWS = [("pictures", "pictures"), ("target pictures (truth)", "target_pictures"),
              ("flagged as target", "flagged"), ("target missed", "missed"), ("false alarms", "false_alarms"),
              ("all errors", "errors"), ("target recall", "recall"), ("accuracy", "accuracy"),
              ("precision", "precision"), ("F1", "f1"), ("ROC AUC", "roc_auc"),
              ("false alarms on look-alikes", "lookalike_false_alarms"),
              ("false alarms on others", "other_false_alarms")]
PAPER_FINAL = {"pictures": 3000, "target_pictures": 463, "flagged": 449, "missed": 79, "false_alarms": 68,
               "errors": 147, "recall": 0.83, "accuracy": 0.951, "precision": 0.85}
RATES = ("recall", "accuracy", "precision")  # shown with their 95% intervals


def _cell(result: SetResult | None, key: str) -> str:
    """One cell of the paper's table; `result` None is the paper's own column."""
    if result is None:
        value, interval = PAPER_FINAL.get(key), None
    else:
        value, interval = getattr(result, key), getattr(result, f"{key}_ci", None)
    if value is None:
        return "-"
    if key in RATES:
        return f"{value:.2%}" + (f" ({interval[0]:.0%}-{interval[1]:.0%})" if interval else "")
    return f"{value:.2%}" if key == "f1" else f"{value:.3f}" if isinstance(value, float) else str(value)


def paper_table(results: dict[str, SetResult]) -> str:
    """The paper's Tables 1-3 layout: one column per (model, set), the paper's final model last."""
    rows = [[label, *(_cell(result, key) for result in results.values()), _cell(None, key)]
            for label, key in PAPER_ROWS]
    return markdown_table(["", *results, "paper, final model (3000 random)"], rows)


def threshold_section(results: dict[str, SetResult], target_precision: float) -> list[str]:
    """Precision at the model's P (with its interval), and the threshold each set needs for the wanted precision."""
    rows = []
    for name, result in results.items():
        best = result.threshold_for_precision
        low, high = result.precision_ci
        rows.append([name, f"{result.threshold:.3f}", f"{result.precision:.2%} ({low:.0%}-{high:.0%})",
                     f"{result.recall:.2%}",
                     *(["-"] * 3 if best["threshold"] is None else
                       [f"{best['threshold']:.3f}", f"{best['precision']:.2%}", f"{best['recall']:.2%}"])])
    return [f"## Threshold for precision >= {target_precision:.0%}", "",
            "P: the model's threshold (stored with it). A user who wants the precision on the left needs the "
            "threshold on the right on pictures like these (`mona sort --confidence T`).", "",
            markdown_table(["model, set", "P", "precision at P (95% interval)", "recall at P",
                            "threshold reaching it", "its precision", "its recall"], rows)]


def by_part_section(results: dict[str, SetResult]) -> list[str]:
    """The generalisation gap: recall on what training saw vs on each thing it never saw."""
    with_parts = {name: r.by_part for name, r in results.items() if len(r.by_part or {}) > 1}
    if not with_parts:
        return []
    parts = list(next(iter(with_parts.values())))
    rows = [[name, *(f"{b[p]['recall']:.1%} ({b[p]['target_pictures']})" if b[p]["target_pictures"] else "-"
                     for p in parts)] for name, b in with_parts.items()]
    gap = []
    for name, by_part in with_parts.items():
        model = name.split(",")[0]
        validation = results[f"{model}, validation"].recall if f"{model}, validation" in results else None
        seen, unseen = by_part["in_distribution"]["recall"], by_part.get("held_out", {}).get("recall")
        gap.append([model, "-" if validation is None else f"{validation:.1%}", f"{seen:.1%}",
                    "-" if unseen is None else f"{unseen:.1%}",
                    "-" if unseen is None or validation is None else f"{(validation - unseen) * 100:+.1f}"])
    alarms = [[name, *(str(b[p]["false_alarms"]) for p in parts)] for name, b in with_parts.items()]
    return ["", "## The generalisation gap", "",
            "Recall on the validation split (the training drawings' own kind), on the test archive's part drawn "
            "like them, and on its held-out parts together; the last column is validation minus held-out, in points.",
            "", markdown_table(["model", "validation", "test, in distribution", "test, held out", "gap"], gap),
            "", "## Recall by part of the archive: seen in training vs held out", "",
            "in_distribution is drawn like the training pictures; each other part shows one thing training never "
            "did. In brackets: the part's target pictures.", "",
            markdown_table(["model, set", *parts], rows), "", "False alarms by part:", "",
            markdown_table(["model, set", *parts], alarms)]


def tiling_section(results: dict[str, SetResult]) -> list[str]:
    """Recall by figure size and precision, without tiles, with the configured mode and with every tile."""
    rows, sweeps = [], []
    for name, result in results.items():
        for row in result.tiling.get("auto_from_sweep", []):
            small = row.get("recall_small")
            sweeps.append([name, f"{row['auto_from']:g}", f"{row['tiled_share']:.0%}", f"{row['precision']:.1%}",
                           f"{row['recall']:.1%}", "-" if small is None else f"{small:.1%}"])
        for mode, row in result.tiling.items():
            if mode == "auto_from_sweep":
                continue
            sizes = row.get("by_size", {})
            rows.append([name, mode, f"{row['tiled_share']:.0%}", f"{row['precision']:.1%}", f"{row['recall']:.1%}",
                         *(f"{sizes[size]['recall']:.1%} ({sizes[size]['target_pictures']})" if size in sizes else "-"
                           for size, _, _ in SIZE_CLASSES), str(row["false_alarms"])])
    if not rows:
        return []
    return ["", "## Finding small figures: tiling", "",
            "Each picture scored whole (off), with its tiles where the configured rule says (the mode in "
            "params.yaml's tiling section; the main table uses it) and with every picture's tiles (always). "
            "Recall by the target's height in the picture: small < 25%, medium 25-50%, large >= 50% "
            "(target pictures in brackets). Tiled: share of the pictures whose tiles were scored.", "",
            markdown_table(["model, set", "tiling", "tiled", "precision", "recall", "recall small", "recall medium",
                            "recall large", "false alarms"], rows),
            "", "The auto rule's floor (tiling.auto_from): pictures scoring below it as a whole skip their tiles. "
            "Tiled is the cost (each tiled picture is scored 1 + tiles times), recall what it buys.", "",
            markdown_table(["model, set", "auto_from", "tiled", "precision", "recall", "recall small"], sweeps)]


def calibration_section(results: dict[str, SetResult]) -> list[str]:
    """ECE per model and set, and the reliability of the top score bins, where P decides."""
    top = []
    for name, result in results.items():
        for row in result.calibration["bins"][-2:]:
            if row["pictures"]:
                top.append([name, f"{row['low']:.1f}-{row['high']:.1f}", str(row["pictures"]),
                            f"{row['mean_score']:.3f}", f"{row['target_rate']:.3f}"])
    return ["", "## Calibration", "", "Expected calibration error (ECE): the picture-weighted mean gap between "
            "the score and the share of pictures with that score that show the target (0 = a score of 0.95 "
            "means 95%). Reliability diagram: `reliability.png`.", "",
            markdown_table(["model, set", "ECE", "model's temperature"],
                           [[name, f"{r.ece:.3f}", "-" if r.temperature is None else f"{r.temperature}"]
                            for name, r in results.items()]),
            "", "The top score bins, where the decision is made: mean score against the share that shows the "
            "target.", "", markdown_table(["model, set", "score bin", "pictures", "mean score", "show the target"],
                                          top)]


def timing_section(timing: dict[str, dict]) -> list[str]:
    rows = [[name, *(f"{t.get(k, 0):.4f}" for k in ("min_s", "mean_s", "median_s", "mode_s", "max_s")),
             f"{t['batch_pictures_per_second']:.1f}"] for name, t in timing.items()]
    return ["", "## Time per picture (one at a time, as the paper measures) and in batch", "",
            markdown_table(["model", "min s", "mean s", "median s", "mode s", "max s", "batch pictures/s"], rows),
            "", "Paper: 0.06-0.27 s per picture, mean 0.075 s, mode 0.06 s (unstated GPU). Batch: the evaluation's "
            "own pass over the test set, every model from one decode of each picture, every tile scored; "
            "`bench/` times the sort.", ""]


def render_report(results: dict[str, SetResult], timing: dict[str, dict], target_precision: float) -> str:
    lines = ["# Evaluation", "", "Decision: score >= the model's threshold P. In brackets: 95% Wilson intervals "
             "(how far a rate measured on this many pictures can be from the true one).", "", paper_table(results), ""]
    lines += threshold_section(results, target_precision)
    lines += by_part_section(results)
    lines += tiling_section(results)
    lines += calibration_section(results)
    lines += timing_section(timing)
    return "\n".join(lines)
