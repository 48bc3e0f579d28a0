"""evaluate: the paper's tables for the three-stage model and the no-curriculum baseline.

    python -m flows.evaluate       # the DVC stage
    mona evaluate --labels DIR           # any labelled folder: DIR/labels.csv with path,target[,kind]

Pictures are scored through the same streaming path as `mona sort`
(`inference.score_stream`, preprocessing from `preprocess`), so a sort at the same threshold decides the same.
Two sets: the stage-3 validation split (raw pictures, from the manifest) and
the labelled random archive (data/test). Writes reports/metrics.json (DVC headline
metrics), reports/evaluation.md, a precision-recall plot and threshold sweeps.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mona_pipeline.config import Params, TilingParams
from mona_pipeline.inference import Scorer, read_files, score_stream
from mona_pipeline.ingest import read_manifest
from mona_pipeline.markdown import markdown_table
from mona_pipeline.metrics import (confusion, latency_stats, reliability, roc_auc, threshold_for_precision,
                                   threshold_sweep)
from mona_pipeline.models import METADATA_FILE, load_trained, read_metadata
from mona_pipeline.preprocess import decode_for_model, prepare

logger = logging.getLogger(__name__)

MODELS = {"three_stage": Path("models/target"), "baseline": Path("models/baseline")}
# The trained stages whose kept epoch goes into reports/metrics.json's `train` section.
STAGES = {stage: Path("models") / stage for stage in ("gender", "lookalike", "target", "baseline")}
REPORTS_DIR, REPORT_NAME, TABLE_NAME = Path("reports/evaluation"), "evaluation.md", "metrics_table.json"


def scores_path(reports_dir: Path, model_name: str, set_name: str) -> Path:
    """Where a model's per-picture scores on a set go (CSV: path, target, kind, score)."""
    return reports_dir / f"scores_{model_name}_{set_name}.csv"


@dataclass
class LabelledSet:
    """Pictures with the truth: paths, shows-the-target, and kind (target | lookalike | other | none)."""

    name: str
    paths: list[Path]
    truth: np.ndarray
    kinds: list[str]
    parts: list[str] | None = None  # which part of the test archive (in_distribution, or what is held out)
    target_heights: list[float | None] | None = None  # the target's height / the picture's, where it shows


SIZE_CLASSES = (("small", 0.0, 0.25), ("medium", 0.25, 0.5), ("large", 0.5, float("inf")))  # by target height


def size_class(height: float | None) -> str | None:
    """small (< 25% of the picture height), medium (< 50%) or large; None when the height is unknown."""
    if height is None:
        return None
    return next(name for name, low, high in SIZE_CLASSES if low <= height < high)


def read_labelled_folder(folder: Path, name: str = "test") -> LabelledSet:
    """A folder with labels.csv (columns path, target [0/1], optional kind)."""
    labels = folder / "labels.csv"
    if not labels.is_file():
        raise FileNotFoundError(f"no labels.csv in {folder} (columns: path,target[,kind])")
    with open(labels, newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or "path" not in rows[0] or "target" not in rows[0]:
        raise ValueError(f"{labels} needs the columns path and target (0 or 1)")
    truth = np.array([row["target"].strip() in ("1", "true", "True", "yes") for row in rows])
    kinds = [row.get("kind") or ("target" if t else "other") for row, t in zip(rows, truth)]
    parts = [row.get("part") or "in_distribution" for row in rows]
    heights = [float(row["target_height"]) if (row.get("target_height") or "").strip() else None for row in rows]
    return LabelledSet(name, [folder / row["path"] for row in rows], truth, kinds, parts, heights)


def validation_set(params: Params) -> LabelledSet:
    """The stage-3 validation split; a non-target picture is a look-alike when stage 2 calls it one."""
    rows = [r for r in read_manifest(params.data.manifest_dir).to_pylist()
            if r["split"] == "validation" and r["label_target"] >= 0]
    truth = np.array([r["label_target"] == 0 for r in rows])
    kinds = ["target" if t else "lookalike" if r["label_lookalike"] == 0 else "other" for r, t in zip(rows, truth)]
    return LabelledSet("validation", [params.data.raw_dir / r["path"] for r in rows], truth, kinds)


@dataclass
class SetScores:
    """One model's scores on a set, whole pictures and tiles apart (NaN: unreadable, or no tiles)."""

    whole: np.ndarray
    tiles: np.ndarray  # the best tile's score of every picture the tiling grid covers
    boxes: list[str | None]  # where that best tile is (`inference.box_text`)
    pictures_per_second: float

    def pooled(self, tiling: TilingParams, threshold: float) -> np.ndarray:
        """The scores `score_stream` gives with `tiling` at the decision threshold `threshold`: the whole
        picture's, or its best tile's where `TilingParams.needs_tiles` says to look at the tiles and that
        tile reaches the threshold (and beats the whole)."""
        if tiling.mode == "off":
            return self.whole
        looked = np.array([not np.isnan(t) and tiling.needs_tiles(w, threshold)
                           for w, t in zip(self.whole, self.tiles)], bool)
        decides = looked & (np.nan_to_num(self.tiles, nan=0.0) >= threshold) & (np.nan_to_num(self.tiles) > self.whole)
        return np.where(decides, self.tiles, self.whole)

    def tiled_share(self, tiling: TilingParams, threshold: float) -> float:
        """Share of the readable pictures whose tiles `tiling` scores."""
        readable = ~np.isnan(self.whole)
        if tiling.mode == "off" or not readable.any():
            return 0.0
        looked = sum(not np.isnan(t) and tiling.needs_tiles(w, threshold)
                     for w, t in zip(self.whole[readable], self.tiles[readable]))
        return looked / int(readable.sum())


def score_set(scorer: Scorer, labelled: LabelledSet, batch_size: int, max_pixels: int,
              tiling: TilingParams) -> SetScores:
    """Every picture's whole score and, with `tiling`'s grid, its best tile (all tiles of every picture
    scored, so any mode's scores follow: `SetScores.pooled`), and the pictures/s of that pass."""
    from mona_pipeline.inference import box_text

    keys = [str(p) for p in labelled.paths]
    always = tiling.model_copy(update={"mode": "always"}) if tiling.mode != "off" else tiling
    start = time.perf_counter()
    # decisive 0: every picture's best tile is kept with its box; `SetScores.pooled` applies the threshold
    scored = {r.key: r for r in score_stream(scorer, read_files(labelled.paths), batch_size, max_pixels,
                                             tiling=always, decisive=0.0)}
    seconds = time.perf_counter() - start
    for key in keys:
        if scored[key].error:
            logger.warning("%s could not be scored: %s", key, scored[key].error)
    whole = np.array([scored[k].whole_score if scored[k].score is not None else np.nan for k in keys], float)
    tiles = np.array([scored[k].tile_score if scored[k].tile_score is not None else np.nan for k in keys], float)
    return SetScores(whole, tiles, [box_text(scored[k].box) for k in keys], len(keys) / seconds)


def time_one_by_one(scorer: Scorer, paths: list[Path], max_pixels: int) -> list[float]:
    """Seconds per picture the paper's way: read, decode, resize and predict one picture at a time."""
    seconds = []
    for index, path in enumerate(paths):
        start = time.perf_counter()
        data = prepare(path.read_bytes(), path.name, scorer.image_size, max_pixels)
        image = decode_for_model(data, scorer.image_size)
        float(scorer(image[None])[0])
        if index:  # the first call traces the graph: not a picture's time
            seconds.append(time.perf_counter() - start)
    return seconds


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
        scores = set_scores.pooled(variant, threshold)
        flagged = np.nan_to_num(scores, nan=0.0) >= threshold
        counts = confusion(labelled.truth, flagged)
        row = {k: counts[k] for k in ("precision", "recall", "f1", "false_alarms")}
        row["tiled_share"] = set_scores.tiled_share(variant, threshold)
        if labelled.target_heights and any(h is not None for h in labelled.target_heights):
            row["by_size"] = results_by_size(labelled.truth, flagged, labelled.target_heights)
        effect[mode] = row
    effect["auto_from_sweep"] = _auto_from_sweep(labelled, set_scores, tiling, threshold)
    return effect


AUTO_FROM_SWEEP = (0.0, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3)


def _auto_from_sweep(labelled: LabelledSet, set_scores: SetScores, tiling: TilingParams, threshold: float) -> list:
    """The auto rule at other floors: the share of pictures tiled (the cost) against what tiling finds."""
    rows = []
    for floor in AUTO_FROM_SWEEP:
        variant = tiling.model_copy(update={"mode": "auto", "auto_from": floor})
        flagged = np.nan_to_num(set_scores.pooled(variant, threshold), nan=0.0) >= threshold
        counts = confusion(labelled.truth, flagged)
        row = {"auto_from": floor, "tiled_share": set_scores.tiled_share(variant, threshold),
               "precision": counts["precision"], "recall": counts["recall"]}
        if labelled.target_heights and any(h is not None for h in labelled.target_heights):
            row["recall_small"] = results_by_size(labelled.truth, flagged, labelled.target_heights).get(
                "small", {}).get("recall")
        rows.append(row)
    return rows


def evaluate_set(truth: np.ndarray, scores: np.ndarray, kinds: list[str], threshold: float,
                 target_precision: float, parts: list[str] | None = None) -> dict:
    """Everything the report needs for one model on one set; unreadable pictures count as not flagged."""
    readable = ~np.isnan(scores)
    flagged = np.where(readable, scores, 0.0) >= threshold
    result = confusion(truth, flagged)
    result["threshold"] = threshold
    result["unreadable"] = int((~readable).sum())
    result["roc_auc"] = roc_auc(truth[readable], scores[readable])
    result["calibration"] = reliability(truth[readable], scores[readable])
    result["ece"] = result["calibration"]["ece"]
    kinds_array = np.array(kinds)
    result["false_alarms_by_kind"] = {kind: int((flagged & ~truth & (kinds_array == kind)).sum())
                                      for kind in ("lookalike", "other", "none")}
    if parts is not None:
        result["by_part"] = results_by_part(truth, flagged, parts)
    best = threshold_for_precision(truth[readable], scores[readable], target_precision)
    result["threshold_for_precision"] = {"precision_wanted": target_precision,
                                         **({k: best[k] for k in ("threshold", "precision", "recall", "accuracy")}
                                            if best else {"threshold": None})}
    return result


PAPER_ROWS = [("pictures", "pictures"), ("target pictures (truth)", "target_pictures"),
              ("flagged as target", "flagged"), ("target missed", "missed"), ("false alarms", "false_alarms"),
              ("all errors", "errors"), ("target recall", "recall"), ("accuracy", "accuracy"),
              ("precision", "precision"), ("F1", "f1"), ("ROC AUC", "roc_auc"),
              ("false alarms on look-alikes", None), ("false alarms on others", None)]
PAPER_FINAL = {"pictures": 3000, "target_pictures": 463, "flagged": 449, "missed": 79, "false_alarms": 68,
               "errors": 147, "recall": 0.83, "accuracy": 0.951, "precision": 0.85}


def _cell(result: dict, key: str | None, label: str) -> str:
    if key is None:
        kind = "lookalike" if "look-alikes" in label else "other"
        value = result.get("false_alarms_by_kind", {}).get(kind)
        if kind == "other" and value is not None:
            value += result["false_alarms_by_kind"].get("none", 0)
        return "-" if value is None else str(value)
    value = result.get(key)
    if value is None:
        return "-"
    if key in ("recall", "accuracy", "precision"):
        low, high = result.get(f"{key}_ci", (None, None))
        return f"{value:.2%}" + (f" ({low:.0%}-{high:.0%})" if low is not None else "")
    return f"{value:.2%}" if key == "f1" else f"{value:.3f}" if isinstance(value, float) else str(value)


def paper_table(results: dict[str, dict]) -> str:
    """The paper's Tables 1-3 layout: one column per (model, set), the paper's final model last."""
    columns = list(results)
    rows = [[label, *(_cell(results[c], key, label) for c in columns), _cell(PAPER_FINAL, key, label)]
            for label, key in PAPER_ROWS]
    return markdown_table(["", *columns, "paper, final model (3000 random)"], rows)


def plot_precision_recall(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5.5, 4.5))
    for name, (truth, scores) in curves.items():
        rows = threshold_sweep(truth, scores, np.unique(np.concatenate([[0.0], scores, [1.0]])))
        axis.plot([r["recall"] for r in rows], [r["precision"] for r in rows], label=name)
    axis.set_xlabel("recall")
    axis.set_ylabel("precision")
    axis.set_xlim(0, 1.02)
    axis.set_ylim(0, 1.02)
    axis.legend(loc="lower left")
    axis.set_title("precision-recall, target class")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def render_worst(labelled: LabelledSet, scores: np.ndarray, threshold: float, path: Path, count: int = 12,
                 boxes: list[str | None] | None = None) -> Path:
    """A contact sheet of what the model gets most wrong: the lowest-scoring missed targets (top row) and
    the highest-scoring false alarms (bottom row), with score, kind and part under each; a false alarm a
    tile raised has that tile outlined."""

    from PIL import Image, ImageDraw

    from mona_pipeline.drawing import draw_box

    readable = ~np.isnan(scores)
    missed = [i for i in np.argsort(np.where(readable, scores, np.inf)) if labelled.truth[i] and scores[i] < threshold]
    alarms = [i for i in np.argsort(-np.where(readable, scores, -np.inf))
              if not labelled.truth[i] and scores[i] >= threshold]
    cell, label_height = 140, 30
    sheet = Image.new("RGB", (count * cell, 2 * (cell + label_height) + 20), (250, 250, 250))
    draw = ImageDraw.Draw(sheet)
    parts = labelled.parts or ["in_distribution"] * len(labelled.paths)
    for row, (title, chosen) in enumerate((("missed targets, lowest scores", missed[:count]),
                                           ("false alarms, highest scores", alarms[:count]))):
        top = row * (cell + label_height + 10)
        draw.text((4, top), f"{title} ({len(missed) if row == 0 else len(alarms)} in all)", fill=(0, 0, 0))
        for column, index in enumerate(chosen):
            with Image.open(labelled.paths[index]) as picture:
                picture = picture.convert("RGB")
                picture.thumbnail((cell - 4, cell - 14))
                if boxes and boxes[index]:
                    draw_box(picture, boxes[index])
                sheet.paste(picture, (column * cell + 2, top + 12))
            draw.text((column * cell + 2, top + cell), f"{scores[index]:.3f} {labelled.kinds[index]}\n"
                                                       f"{parts[index]}", fill=(120, 0, 0))
    sheet.save(path)
    return path


def plot_reliability(results: dict[str, dict], path: Path) -> Path:
    """Reliability diagram: per score bin, the share of pictures that show the target vs the mean score."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5.5, 4.5))
    axis.plot([0, 1], [0, 1], color="grey", linestyle=":", label="calibrated")
    for name, result in results.items():
        bins = [b for b in result["calibration"]["bins"] if b["pictures"]]
        axis.plot([b["mean_score"] for b in bins], [b["target_rate"] for b in bins], marker="o",
                  label=f"{name} (ECE {result['ece']:.3f})")
    axis.set_xlabel("score (mean in bin)")
    axis.set_ylabel("pictures that show the target")
    axis.legend(loc="upper left", fontsize=8)
    axis.set_title("reliability of the scores")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def run_evaluate(params: Params, reports_dir: Path = REPORTS_DIR,
                 metrics_path: Path = Path("reports/metrics.json"), test_dir: Path | None = None,
                 models: dict[str, Path] | None = None, stages: dict[str, Path] | None = None) -> dict:
    """Evaluate each model on the validation split and the labelled test folder; write the reports.

    Args:
        stages: the trained stages whose kept epoch reports/metrics.json lists (default: models/<stage>).

    Returns:
        {"metrics": {model: {set: result}}, "timing": {...}, "markdown": str}
    """
    models = models or MODELS
    test_dir = test_dir or params.data.test_dir
    reports_dir.mkdir(parents=True, exist_ok=True)
    sets = [validation_set(params)]
    if (test_dir / "labels.csv").is_file():
        sets.append(read_labelled_folder(test_dir))
    metrics, table_results, curves, timing = {}, {}, {}, {}
    for model_name, model_dir in models.items():
        scorer = Scorer(load_trained(model_dir))
        threshold = scorer.trained.metadata.threshold
        metrics[model_name] = {}
        for labelled in sets:
            set_scores = score_set(scorer, labelled, params.evaluate.batch_size, params.data.max_image_pixels,
                                   params.tiling)
            scores = set_scores.pooled(params.tiling, threshold)
            result = evaluate_set(labelled.truth, scores, labelled.kinds, threshold,
                                  params.evaluate.target_precision, labelled.parts)
            result["tiling"] = tiling_effect(labelled, set_scores, params.tiling, threshold)
            result["batch_pictures_per_second"] = set_scores.pictures_per_second
            result["temperature"] = scorer.trained.metadata.temperature
            metrics[model_name][labelled.name] = result
            table_results[f"{model_name}, {labelled.name}"] = result
            curves[f"{model_name}, {labelled.name}"] = (labelled.truth[~np.isnan(scores)], scores[~np.isnan(scores)])
            _write_scores(scores_path(reports_dir, model_name, labelled.name), labelled, scores, set_scores)
            render_worst(labelled, scores, threshold, reports_dir / f"worst_{model_name}_{labelled.name}.png",
                         boxes=_boxes_used(set_scores, scores))
            with open(reports_dir / f"sweep_{model_name}_{labelled.name}.csv", "w", newline="") as handle:
                sweep = threshold_sweep(labelled.truth, np.nan_to_num(scores, nan=0.0))
                writer = csv.DictWriter(handle, fieldnames=list(sweep[0]))
                writer.writeheader()
                writer.writerows(sweep)
        timed = sets[-1].paths[: params.evaluate.timing_pictures + 1]
        timing[model_name] = {**latency_stats(time_one_by_one(scorer, timed, params.data.max_image_pixels)),
                              "batch_pictures_per_second": metrics[model_name][sets[-1].name]["batch_pictures_per_second"]}
    plot_precision_recall(curves, reports_dir / "precision_recall.png")
    plot_reliability(table_results, reports_dir / "reliability.png")
    markdown = render_report(table_results, timing, params.evaluate.target_precision)
    (reports_dir / REPORT_NAME).write_text(markdown)
    metrics_path.parent.mkdir(parents=True, exist_ok=True)
    metrics_path.write_text(json.dumps(headline(metrics) | {"train": training_headline(stages or STAGES)}, indent=2))
    (reports_dir / TABLE_NAME).write_text(json.dumps(_table(metrics), indent=2))
    (reports_dir / "metrics_full.json").write_text(json.dumps(metrics, indent=2, default=float))
    (reports_dir / "timing.json").write_text(json.dumps(timing, indent=2))
    return {"metrics": metrics, "timing": timing, "markdown": markdown}


HEADLINE = ("f1", "precision", "recall", "recall_held_out", "recall_small", "lookalike_false_alarms", "ece")


def headline(metrics: dict) -> dict:
    """The DVC metrics file (reports/metrics.json): a dozen numbers that fit one `dvc metrics show` row."""
    table = _table(metrics)
    return {model: {key: round(sets["test"][key], 4) for key in HEADLINE if key in sets.get("test", {})}
            for model, sets in table.items()}


def training_headline(stages: dict[str, Path]) -> dict:
    """Per trained stage, its kept epoch's train and validation accuracy (from its metadata.json), so that
    `dvc exp show` lists them after the test archive's numbers: `train.gender.val_accuracy`, ..."""
    found = {}
    for stage, folder in stages.items():
        if not (folder / METADATA_FILE).is_file():
            continue
        kept = read_metadata(folder).metrics
        found[stage] = {key: round(kept[key], 4) for key in ("accuracy", "val_accuracy") if key in kept}
    return found


def _table(metrics: dict) -> dict:
    """Per model and set, the main numbers (reports/evaluation/metrics_table.json; metrics_full.json has all)."""
    keys = ("accuracy", "precision", "recall", "f1", "false_alarms", "missed", "pictures", "roc_auc", "threshold", "ece")
    def headline(result: dict) -> dict:
        parts = {f"recall_{p}": result["by_part"][p]["recall"] for p in ("in_distribution", "held_out")
                 if p in result.get("by_part", {})}
        tiles = _tiling_headline(result.get("tiling", {}))
        return {k: result[k] for k in keys} | {"lookalike_false_alarms": result["false_alarms_by_kind"]["lookalike"]} | parts \
            | tiles

    return {model: {name: headline(result) for name, result in sets.items()} for model, sets in metrics.items()}


def _boxes_used(set_scores: SetScores, scores: np.ndarray) -> list[str | None]:
    """The tile box of each picture whose score came from a tile (None where the whole picture's did)."""
    return [box if not np.isnan(score) and score > whole else None
            for box, score, whole in zip(set_scores.boxes, scores, set_scores.whole)]


def _tiling_headline(effect: dict) -> dict:
    """recall_small (the configured tiling) and the same numbers without tiles, for the metrics table."""
    if not effect:
        return {}
    modes = [mode for mode in effect if mode != "auto_from_sweep"]
    chosen = next((mode for mode in modes if mode not in ("off", "always")), "always" if len(modes) > 1 else "off")
    row = {"tiled_share": effect[chosen]["tiled_share"], "precision_untiled": effect["off"]["precision"],
           "recall_untiled": effect["off"]["recall"]}
    for size in ("small",):
        if size in effect[chosen].get("by_size", {}):
            row[f"recall_{size}"] = effect[chosen]["by_size"][size]["recall"]
            row[f"recall_{size}_untiled"] = effect["off"]["by_size"][size]["recall"]
    return row


def tiling_section(results: dict[str, dict]) -> list[str]:
    """Recall by figure size and precision, without tiles, with the configured mode and with every tile."""
    rows = []
    sweeps = []
    for name, result in results.items():
        for row in result.get("tiling", {}).get("auto_from_sweep", []):
            small = row.get("recall_small")
            sweeps.append([name, f"{row['auto_from']:g}", f"{row['tiled_share']:.0%}", f"{row['precision']:.1%}",
                           f"{row['recall']:.1%}", "-" if small is None else f"{small:.1%}"])
        for mode, row in result.get("tiling", {}).items():
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


def _write_scores(path: Path, labelled: LabelledSet, scores: np.ndarray, set_scores: SetScores) -> None:
    def number(value: float) -> str:
        return "" if np.isnan(value) else f"{value:.6f}"

    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "target", "kind", "part", "target_height", "score", "whole_score", "tile_score",
                         "box"])
        parts = labelled.parts or ["in_distribution"] * len(labelled.paths)
        heights = labelled.target_heights or [None] * len(labelled.paths)
        for row in zip(labelled.paths, labelled.truth, labelled.kinds, parts, heights, scores, set_scores.whole,
                       set_scores.tiles, _boxes_used(set_scores, scores)):
            picture, truth, kind, part, height, score, whole, tile, box = row
            writer.writerow([picture.as_posix(), int(truth), kind, part, "" if height is None else height,
                             number(score), number(whole), number(tile), box or ""])


def by_part_section(results: dict[str, dict]) -> list[str]:
    """The generalisation gap: recall on what training saw vs on each thing it never saw."""
    with_parts = {name: r["by_part"] for name, r in results.items() if len(r.get("by_part", {})) > 1}
    if not with_parts:
        return []
    parts = list(next(iter(with_parts.values())))
    rows = [[name, *(f"{b[p]['recall']:.1%} ({b[p]['target_pictures']})" if b[p]["target_pictures"] else "-"
                     for p in parts)] for name, b in with_parts.items()]
    gap = []
    for name, by_part in with_parts.items():
        model = name.split(",")[0]
        validation = results.get(f"{model}, validation", {}).get("recall")
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


def render_report(results: dict[str, dict], timing: dict[str, dict], target_precision: float) -> str:
    lines = ["# Evaluation", "", "Decision: score >= the model's threshold P. In brackets: 95% Wilson intervals "
             "(how far a rate measured on this many pictures can be from the true one).", "", paper_table(results), "",
             f"## Threshold for precision >= {target_precision:.0%}", ""]
    rows = []
    for name, result in results.items():
        best = result["threshold_for_precision"]
        rows.append([name, f"{result['threshold']:.2f}", f"{result['precision']:.2%}", f"{result['recall']:.2%}",
                     "-" if best["threshold"] is None else f"{best['threshold']:.3f}",
                     "-" if best["threshold"] is None else f"{best['precision']:.2%}",
                     "-" if best["threshold"] is None else f"{best['recall']:.2%}"])
    lines.append(markdown_table(["model, set", "P", "precision at P", "recall at P", "threshold reaching it",
                                 "its precision", "its recall"], rows))
    lines += by_part_section(results)
    lines += tiling_section(results)
    lines += ["", "## Calibration", "", "Expected calibration error (ECE): the picture-weighted mean gap between "
              "the score and the share of pictures with that score that show the target (0 = a score of 0.95 "
              "means 95%). Reliability diagram: `reliability.png`.", ""]
    lines.append(markdown_table(["model, set", "ECE", "model's temperature"],
                                [[name, f"{result['ece']:.3f}", result.get("temperature", "-")]
                                 for name, result in results.items()]))
    lines += ["", "## Time per picture (one at a time, as the paper measures) and in batch", ""]
    rows = [[name, *(f"{t.get(k, 0):.4f}" for k in ("min_s", "mean_s", "median_s", "mode_s", "max_s")),
             f"{t['batch_pictures_per_second']:.1f}"] for name, t in timing.items()]
    lines.append(markdown_table(["model", "min s", "mean s", "median s", "mode s", "max s", "batch pictures/s"], rows))
    lines += ["", "Paper: 0.06-0.27 s per picture, mean 0.075 s, mode 0.06 s (unstated GPU).", ""]
    return "\n".join(lines)
