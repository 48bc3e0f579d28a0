import csv
import json
from pathlib import Path

import numpy as np
import pytest

from mona_pipeline import evaluate
from mona_pipeline.evaluate import report, results, sets


def test_labelled_folder_needs_labels(tmp_path):
    with pytest.raises(sets.LabelsError, match="no labels.csv"):
        evaluate.read_labelled_folder(tmp_path)
    (tmp_path / "labels.csv").write_text("file,label\na.jpg,1\n")
    with pytest.raises(ValueError, match="path and target"):
        evaluate.read_labelled_folder(tmp_path)


def test_false_alarms_are_broken_down_by_kind():
    truth = np.array([1, 1, 0, 0, 0, 0], bool)
    scores = np.array([0.99, 0.2, 0.97, 0.96, 0.1, np.nan])
    kinds = ["target", "target", "lookalike", "other", "lookalike", "none"]
    result = evaluate.evaluate_set(truth, scores, kinds, 0.95, 0.9)
    assert result.false_alarms == 2 and result.missed == 1 and result.unreadable == 1
    assert result.false_alarms_by_kind == {"lookalike": 1, "other": 1, "none": 0}
    assert result.lookalike_false_alarms == 1 and result.other_false_alarms == 1
    assert result.threshold_for_precision["threshold"] == 0.99
    # The paper's table finds its look-alike row by the result's attribute, not by its label.
    table = report.paper_table({"m, test": result})
    assert "| false alarms on look-alikes | 1 |" in table and "| false alarms on others | 1 |" in table


def test_run_evaluate_writes_metrics_report_and_scores(demo_project, colour_model, tmp_path):
    _, params = demo_project
    result = evaluate.run_evaluate(params, tmp_path / "evaluation", tmp_path / "metrics.json",
                                   models={"three_stage": colour_model, "baseline": colour_model},
                                   stages={"target": colour_model})
    headline = json.loads((tmp_path / "metrics.json").read_text())
    assert list(headline) == ["three_stage", "baseline", "train"]  # the test archive's numbers first
    assert list(headline["baseline"]) == [key for key in results.HEADLINE if key in headline["baseline"]]
    assert {"f1", "precision", "recall", "recall_held_out", "lookalike_false_alarms", "ece"} <= set(headline["baseline"])
    assert set(headline["train"]) == {"target"}
    metrics = json.loads((tmp_path / "evaluation" / "metrics_table.json").read_text())
    for model in ("three_stage", "baseline"):
        for name in ("validation", "test"):
            entry = metrics[model][name]
            assert {"accuracy", "precision", "recall", "f1", "false_alarms", "missed", "pictures"} <= set(entry)
    with open(params.data.test_dir / "labels.csv") as handle:
        labels = list(csv.DictReader(handle))
    assert metrics["three_stage"]["test"]["pictures"] == len(labels)
    full = json.loads((tmp_path / "evaluation" / "metrics_full.json").read_text())
    assert full["three_stage"]["test"]["target_pictures"] == sum(int(r["target"]) for r in labels)
    report = (tmp_path / "evaluation" / "evaluation.md").read_text()
    assert "target missed" in report and "false alarms on look-alikes" in report and "mode s" in report
    with open(tmp_path / "evaluation" / "scores_three_stage_test.csv") as handle:
        assert len(list(csv.DictReader(handle))) == len(labels)
    assert (tmp_path / "evaluation" / "precision_recall.png").stat().st_size > 1000
    assert (tmp_path / "evaluation" / "worst_three_stage_test.png").stat().st_size > 1000
    assert (tmp_path / "evaluation" / "reliability.png").stat().st_size > 1000
    assert result.timing["three_stage"]["pictures"] == params.evaluate.timing_pictures
    assert result.results["three_stage"]["test"].pictures == len(labels)


def test_recall_is_reported_per_part_of_the_archive_and_held_out_together():
    truth = np.array([1, 1, 1, 1, 0, 1, 0], bool)
    scores = np.array([0.99, 0.98, 0.2, 0.1, 0.97, 0.99, 0.1])
    parts = ["in_distribution", "in_distribution", "pose", "small", "small", "style", "pose"]
    result = evaluate.evaluate_set(truth, scores, ["target"] * 4 + ["other", "target", "other"], 0.95, 0.9, parts)
    by_part = result.by_part
    assert by_part["in_distribution"]["recall"] == 1.0 and by_part["pose"]["recall"] == 0.0
    assert by_part["held_out"]["target_pictures"] == 3 and by_part["held_out"]["recall"] == 1 / 3
    assert by_part["small"]["false_alarms"] == 1
    section = report.by_part_section({"m, test": result})
    assert any("in_distribution" in line and "33.3% (3)" in line for line in section)
    assert "| m | - | 100.0% | 33.3% | - |" in "\n".join(section)


def test_recall_by_figure_size_with_and_without_tiles():
    from mona_pipeline.config import TilingParams

    truth = np.array([True, True, True, True, False, False])
    heights = [0.1, 0.2, 0.4, 0.8, None, None]
    labelled = evaluate.LabelledSet("test", [Path(f"p{i}") for i in range(6)], truth, ["target"] * 4 + ["other"] * 2,
                                    target_heights=heights)
    whole = np.array([0.1, 0.2, 0.97, 0.99, 0.01, 0.5])
    tiles = np.array([0.96, 0.3, 0.5, 0.5, 0.02, 0.97])  # finds the first small figure; one false alarm
    scores = evaluate.SetScores(whole, tiles, [None] * 6, 10.0)
    effect = evaluate.tiling_effect(labelled, scores, TilingParams(mode="auto", auto_from=0.05), 0.95)
    assert effect["off"]["by_size"]["small"]["recall"] == 0.0 and effect["auto"]["by_size"]["small"]["recall"] == 0.5
    assert effect["off"]["by_size"]["large"]["recall"] == 1.0 and effect["off"]["false_alarms"] == 0
    assert effect["auto"]["false_alarms"] == 1 and effect["auto"]["tiled_share"] == 3 / 6  # not p2, p3 (kept), p4
    assert effect["always"]["tiled_share"] == 1.0
    assert [row["auto_from"] for row in effect["auto_from_sweep"]] == list(results.AUTO_FROM_SWEEP)
    result = evaluate.evaluate_set(truth, scores.pooled(TilingParams(mode="auto", auto_from=0.05), 0.95),
                                   labelled.kinds, 0.95, 0.9)
    result.tiling = effect
    section = "\n".join(report.tiling_section({"m, test": result}))
    assert "recall small" in section and "| m, test | auto | 50% |" in section
    assert [sets.size_class(h) for h in (0.1, 0.3, 0.5)] == ["small", "medium", "large"]
