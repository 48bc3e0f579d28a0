"""The seeds summary over DVC experiments: grouped by variant, mean and spread per model, paired differences."""

import pytest

from mona_pipeline import compare


def _row(seed: int, f1: tuple[float, float], alarms: tuple[int, int], name: str | None = None,
         weight: float = 1.0, state: str | None = "success") -> dict:
    """One experiment as `dvc exp show --json --param-deps` gives it (an ExpRange with its one revision)."""
    metrics = {model: {"f1": value, "precision": 0.9, "lookalike_false_alarms": alarm}
               for model, value, alarm in zip(compare.MODELS, f1, alarms)}
    data = {"params": {"params.yaml": {"data": {"train": {"seed": seed, "lookalike_weight": weight}}}},
            "metrics": {"reports/metrics.json": {"data": {**metrics, "train": {"gender": {"val_accuracy": 0.6}}}}}}
    revision = {"rev": f"{seed:040d}", "name": name, "data": data, "error": None, "experiments": None}
    return {"revs": [revision], "executor": {"state": state} if state else None, "name": name}


def _commits(*experiments: dict, workspace: dict | None = None) -> list[dict]:
    workspace = workspace or _row(42, (0.8, 0.7), (3, 5))["revs"][0]
    head = dict(_row(42, (0.99, 0.1), (0, 99))["revs"][0], rev="abc123", name="main")  # another machine's
    return [dict(workspace, rev="workspace", name=None), dict(head, experiments=list(experiments))]


def test_each_variant_gets_mean_spread_and_the_paired_difference():
    commits = _commits(_row(1, (0.9, 0.85), (2, 6), "seed-1"), _row(2, (0.6, 0.65), (9, 4), "seed-2"),
                       _row(1, (0.5, 0.5), (1, 1), "weighted-1", weight=3.0),
                       _row(2, (0.4, 0.6), (1, 2), "weighted-2", weight=3.0),
                       _row(3, (0.1, 0.1), (0, 0), "still-running", state="running"))
    experiments = compare.experiments_from_json(commits)
    # The committed HEAD row (numbers from another machine) and the unfinished experiment are left out.
    assert sorted(e.name for e in experiments) == ["seed-1", "seed-2", "weighted-1", "weighted-2", "workspace"]
    summaries = {s["variant"]: s for s in compare.summarise(experiments)}
    assert set(summaries) == {"train.lookalike_weight=1.0", "train.lookalike_weight=3.0"}
    plain = summaries["train.lookalike_weight=1.0"]
    assert plain["seeds"] == [1, 2, 42] and plain["experiments"] == ["seed-1", "seed-2", "workspace"]
    f1 = plain["metrics"]["f1"]
    assert f1["three_stage"]["mean"] == pytest.approx(0.7667, abs=1e-4)
    assert f1["three_stage"]["std"] == pytest.approx(0.1528, abs=1e-4)
    assert f1["difference"]["values"] == pytest.approx([0.05, -0.05, 0.10])  # seed by seed, 1, 2, 42
    assert compare.verdict("f1", f1["difference"]) == "within the seeds' spread"
    alarms = summaries["train.lookalike_weight=3.0"]["metrics"]["lookalike_false_alarms"]
    assert compare.verdict("lookalike_false_alarms", alarms["difference"]) == "within the seeds' spread"
    table = compare.render(list(summaries.values()))
    assert "## train.lookalike_weight=1.0: seeds 1, 2, 42" in table and "| f1 | 0.767 ± 0.153 (0.600 to 0.900)" in table


def test_a_variant_with_one_seed_is_not_summarised_and_an_applied_experiment_counts_once():
    applied = _row(1, (0.9, 0.85), (2, 6), "seed-1")
    commits = _commits(applied, workspace=applied["revs"][0])  # `dvc exp apply seed-1`: the workspace is seed 1
    experiments = compare.experiments_from_json(commits)
    assert [e.seed for e in experiments] == [1]
    assert compare.summarise(experiments) == []
    assert "No variant has finished experiments with two or more seeds" in compare.render([])


def test_a_verdict_needs_every_seed_to_agree():
    assert compare.verdict("f1", {"values": [0.1, 0.02]}) == "three-stage better on every seed"
    assert compare.verdict("lookalike_false_alarms", {"values": [-3, -1]}) == "three-stage better on every seed"
    assert compare.verdict("ece", {"values": [0.01, 0.02]}) == "baseline better on every seed"
    assert compare.verdict("f1", {"values": [0.1, -0.02]}) == "within the seeds' spread"
