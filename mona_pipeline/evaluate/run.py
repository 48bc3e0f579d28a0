"""The evaluate stage: every model on the validation split and the test archive, and the reports written.

    evaluation = run_evaluate(params)      # reports/metrics.json, reports/evaluation/
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mona_pipeline import figures
from mona_pipeline.config import Params
from mona_pipeline.evaluate.labels import LABELS_NAME
from mona_pipeline.evaluate.paths import MODELS, REPORT_NAME, REPORTS_DIR, TABLE_NAME, scores_path
from mona_pipeline.evaluate.report import render_report
from mona_pipeline.evaluate.results import SetResult, evaluate_set, headline, main_numbers, tiling_effect
from mona_pipeline.evaluate.sets import (LabelledSet, SetScores, read_labelled_folder, score_models, time_one_by_one,
                                         validation_set)
from mona_pipeline.inference import Panel, Scorer
from mona_pipeline.metrics import latency_stats, threshold_sweep
from mona_pipeline.trained import load_trained

# The trained stages whose kept epoch goes into reports/metrics.json's `train` section.
STAGES = {stage: Path("models") / stage for stage in ("gender", "lookalike", "target", "baseline")}
CHARACTER_REPORTS = Path("reports/characters")


@dataclass
class Evaluation:
    """What `run_evaluate` found: results per model and set, timings per model, and the report."""

    results: dict[str, dict[str, SetResult]]  # model -> set ("validation", "test") -> result
    timing: dict[str, dict]
    markdown: str


def run_evaluate(params: Params, reports_dir: Path = REPORTS_DIR,
                 metrics_path: Path = Path("reports/metrics.json"), test_dir: Path | None = None,
                 models: dict[str, Path] | None = None, stages: dict[str, Path] | None = None,
                 character: str | None = None) -> Evaluation:
    """Evaluate each model on the validation split and the labelled test folder; write the reports.

    Args:
        stages: the trained stages whose kept epoch reports/metrics.json lists (default: models/<stage>).
        character: judge the models as finders of this character of params.characters, not of the target
            (`evaluate_character`).
    """
    models = models or MODELS
    test_dir = test_dir or params.data.test_dir
    reports_dir.mkdir(parents=True, exist_ok=True)
    sets = [validation_set(params, character)]
    if (test_dir / LABELS_NAME).is_file():
        # a character's look-alikes: the lookalike stage's first class
        lookalikes = next(iter(params.stages.lookalike.classes.values())) if character else []
        sets.append(read_labelled_folder(test_dir, character=character, lookalikes=lookalikes))
    scorers = {model_name: Scorer(load_trained(model_dir)) for model_name, model_dir in models.items()}
    results: dict[str, dict[str, SetResult]] = {model_name: {} for model_name in scorers}
    timing, curves = {}, {}
    for labelled in sets:  # every model from one decode of each picture (and one cut of its tiles)
        by_model = score_models(Panel(list(scorers.values())), labelled, params.evaluate.batch_size,
                                params.data.max_image_pixels, params.tiling)
        for (model_name, scorer), set_scores in zip(scorers.items(), by_model):
            result, scores = evaluate_model_on(scorer, labelled, set_scores, params, reports_dir, model_name)
            results[model_name][labelled.name] = result
            readable = ~np.isnan(scores)
            curves[f"{model_name}, {labelled.name}"] = (labelled.truth[readable], scores[readable])
    for model_name, scorer in scorers.items():
        timed = sets[-1].paths[: params.evaluate.timing_pictures + 1]
        timing[model_name] = {**latency_stats(time_one_by_one(scorer, timed, params.data.max_image_pixels)),
                              "batch_pictures_per_second": results[model_name][sets[-1].name].batch_pictures_per_second}
    by_column = {f"{model}, {name}": result for model, by_set in results.items() for name, result in by_set.items()}
    figures.plot_precision_recall(curves, reports_dir / "precision_recall.png")
    figures.plot_reliability({name: (r.calibration, r.ece) for name, r in by_column.items()},
                             reports_dir / "reliability.png")
    markdown = render_report(by_column, timing, params.evaluate.target_precision)
    (reports_dir / REPORT_NAME).write_text(markdown)
    metrics_path.parent.mkdir(parents=True, exist_ok=True)
    metrics_path.write_text(json.dumps(headline(results, stages or STAGES), indent=2))
    (reports_dir / TABLE_NAME).write_text(json.dumps(
        {model: {name: main_numbers(r) for name, r in by_set.items()} for model, by_set in results.items()}, indent=2))
    (reports_dir / "metrics_full.json").write_text(json.dumps(
        {model: {name: r.as_dict() for name, r in by_set.items()} for model, by_set in results.items()}, indent=2,
        default=float))
    (reports_dir / "timing.json").write_text(json.dumps(timing, indent=2))
    return Evaluation(results, timing, markdown)


def character_reports(name: str) -> Path:
    """Where a character's evaluation goes: reports/characters/<name>/ (metrics.json and the evaluation's files)."""
    return CHARACTER_REPORTS / name


def evaluate_character(params: Params, name: str) -> Evaluation:
    """The evaluate stage for a character (params.characters): models/<name> on her validation split and on
    the test archive, judged by its characters column; reports in `character_reports(name)`."""
    folder = character_reports(name)
    return run_evaluate(params, reports_dir=folder, metrics_path=folder / "metrics.json",
                        models={name: Path("models") / name}, stages={name: Path("models") / name}, character=name)


def evaluate_model_on(scorer: Scorer, labelled: LabelledSet, set_scores: SetScores, params: Params,
                      reports_dir: Path, model_name: str) -> tuple[SetResult, np.ndarray]:
    """One model's result on one set from its scores (`score_models`, params.yaml's tiling); writes its scores,
    sweep and worst cases. Returns the result and the pooled scores."""
    threshold = scorer.trained.metadata.threshold
    scores = set_scores.pooled(params.tiling, threshold)
    result = evaluate_set(labelled.truth, scores, labelled.kinds, threshold, params.evaluate.target_precision,
                          labelled.parts)
    result.tiling = tiling_effect(labelled, set_scores, params.tiling, threshold)
    result.batch_pictures_per_second = set_scores.pictures_per_second
    result.temperature = scorer.trained.metadata.temperature
    boxes = set_scores.boxes_used(params.tiling, threshold)
    _write_scores(scores_path(reports_dir, model_name, labelled.name), labelled, scores, set_scores, boxes)
    figures.render_worst(labelled.paths, labelled.truth, labelled.kinds,
                         labelled.parts or ["in_distribution"] * len(labelled.paths), scores, threshold,
                         reports_dir / f"worst_{model_name}_{labelled.name}.png", boxes=boxes)
    with open(reports_dir / f"sweep_{model_name}_{labelled.name}.csv", "w", newline="") as handle:
        sweep = threshold_sweep(labelled.truth, np.nan_to_num(scores, nan=0.0))
        writer = csv.DictWriter(handle, fieldnames=list(sweep[0]))
        writer.writeheader()
        writer.writerows(sweep)
    return result, scores


def _write_scores(path: Path, labelled: LabelledSet, scores: np.ndarray, set_scores: SetScores,
                  boxes: list[str | None]) -> None:
    def number(value: float) -> str:
        return "" if np.isnan(value) else f"{value:.6f}"

    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "target", "kind", "part", "target_height", "score", "whole_score", "tile_score",
                         "box"])
        parts = labelled.parts or ["in_distribution"] * len(labelled.paths)
        heights = labelled.target_heights or [None] * len(labelled.paths)
        for row in zip(labelled.paths, labelled.truth, labelled.kinds, parts, heights, scores, set_scores.whole,
                       set_scores.tiles, boxes):
            picture, truth, kind, part, height, score, whole, tile, box = row
            writer.writerow([picture.as_posix(), int(truth), kind, part, "" if height is None else height,
                             number(score), number(whole), number(tile), box or ""])
