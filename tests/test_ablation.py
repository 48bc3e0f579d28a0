"""bench/ablation: overrides reach the params, and the baseline is retrained exactly when a variant changes it."""

from bench import ablation
from mona_pipeline.config import Params
from tests.conftest import tiny_params


def _variant(params: Params, overrides: list[str]) -> Params:
    return Params.model_validate(ablation.apply_overrides(params.model_dump(mode="json"), overrides))


def test_overrides_set_nested_keys_read_as_yaml(tmp_path):
    params = tiny_params(tmp_path)
    changed = _variant(params, ["stages.target.finetune_learning_rate=0.002", "train.lookalike_weight=3"])
    assert changed.stages.target.finetune_learning_rate == 0.002 and changed.train.lookalike_weight == 3.0


def test_the_baseline_retrains_only_when_the_variant_changes_it(tmp_path):
    params = tiny_params(tmp_path)
    gender, target = params.stages.gender.finetune_epochs, params.stages.target.finetune_epochs
    moved = _variant(params, [f"stages.gender.finetune_epochs={gender - 1}",
                              f"stages.target.finetune_epochs={target + 1}"])  # the same epochs in all
    assert not ablation.baseline_changed(moved, params)
    assert not ablation.baseline_changed(_variant(params, ["stages.target.finetune_learning_rate=0.0123"]), params)
    assert ablation.baseline_changed(_variant(params, ["train.lookalike_weight=3"]), params)
    assert ablation.baseline_changed(_variant(params, [f"stages.target.finetune_epochs={target + 1}"]), params)
