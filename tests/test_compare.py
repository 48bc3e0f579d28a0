"""The seed comparison's summary: means and spreads per model, the paired difference, honest verdicts."""

import json

import pytest

from mona_pipeline import compare


def _metrics(f1: float, alarms: int) -> dict:
    sets = {"test": {"f1": f1, "precision": 0.9, "recall": 0.8, "recall_in_distribution": 0.9,
                     "recall_held_out": 0.7, "lookalike_false_alarms": alarms, "false_alarms": alarms + 1,
                     "ece": 0.05, "roc_auc": 0.95},
            "validation": {"f1": f1, "recall": 0.8}}
    return sets


def test_summary_gives_mean_spread_and_the_paired_difference(tmp_path):
    per_seed = {1: {"three_stage": _metrics(0.80, 3), "baseline": _metrics(0.70, 5)},
                2: {"three_stage": _metrics(0.90, 2), "baseline": _metrics(0.85, 6)},
                3: {"three_stage": _metrics(0.60, 9), "baseline": _metrics(0.65, 4)}}
    summary = compare.write_summary(per_seed, tmp_path / "compare.json", tmp_path / "compare.md")
    f1 = summary["models"]["three_stage"]["test.f1"]
    assert f1["mean"] == pytest.approx(0.7667, abs=1e-4) and f1["min"] == 0.6 and f1["max"] == 0.9
    assert f1["std"] == pytest.approx(0.1528, abs=1e-4)
    difference = summary["three_stage_minus_baseline"]["test.f1"]
    assert difference["values"] == pytest.approx([0.10, 0.05, -0.05])
    assert json.loads((tmp_path / "compare.json").read_text())["seeds"] == [1, 2, 3]
    table = (tmp_path / "compare.md").read_text()
    assert "| test.f1 |" in table and "within the seeds' spread" in table


def test_a_verdict_needs_every_seed_to_agree():
    assert compare._verdict("f1", {"values": [0.1, 0.02]}) == "three-stage better on every seed"
    assert compare._verdict("lookalike_false_alarms", {"values": [-3, -1]}) == "three-stage better on every seed"
    assert compare._verdict("ece", {"values": [0.01, 0.02]}) == "baseline better on every seed"
    assert compare._verdict("f1", {"values": [0.1, -0.02]}) == "within the seeds' spread"


def test_the_pipelines_own_seed_is_evaluated_not_trained_again(tmp_path):
    from mona_pipeline.models import MODEL_FILE
    from tests.conftest import tiny_params

    params = tiny_params(tmp_path)
    models = {"three_stage": tmp_path / "target", "baseline": tmp_path / "baseline"}
    assert compare.already_trained(params, params.train.seed, models) is None  # not trained yet
    for folder in models.values():
        folder.mkdir()
        (folder / MODEL_FILE).write_bytes(b"weights")
    assert compare.already_trained(params, params.train.seed, models) == models
    assert compare.already_trained(params, params.train.seed + 1, models) is None  # another seed trains


def test_the_flow_trains_seeds_side_by_side_in_processes_and_summarises(demo_project, tmp_path, monkeypatch,
                                                                         prefect_harness):
    """`dvc repro compare`'s flow: each seed in a Python process of its own (TensorFlow's policy and seeds are per
    process), run at once, then one summary over both; the same seed gives the same table as in-process training
    would (the child is the stage's own `train_seed`)."""
    from flows.compare import compare_flow
    from tests.conftest import write_params

    _, params = demo_project
    small = params.model_copy(update={
        "model": params.model.model_copy(update={"architecture": "compactcnn", "width": 0.25}),
        "compare": params.compare.model_copy(update={"seeds": [3, 4]}),
        "tiling": params.tiling.model_copy(update={"mode": "off"})})
    monkeypatch.chdir(tmp_path)
    summary = compare_flow(write_params(tmp_path / "params.yaml", small))
    assert summary["seeds"] == [3, 4]
    for seed in (3, 4):
        assert (tmp_path / "models/compare" / f"seed-{seed}" / "target" / "model.keras").is_file()
        assert (tmp_path / "models/compare" / f"seed-{seed}" / "baseline" / "model.keras").is_file()
    assert len(summary["models"]["three_stage"]["test.f1"]["values"]) == 2
    assert "| test.f1 |" in (tmp_path / "reports/compare.md").read_text()


def test_a_failing_seed_process_fails_the_comparison_with_its_seed_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("target: [not valid\n")
    with pytest.raises(RuntimeError, match="seed 7: training or evaluation failed"):
        compare.train_seed_in_process(tmp_path / "params.yaml", 7)
