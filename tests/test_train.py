import json
from pathlib import Path

import keras
import numpy as np
import pytest

from mona_pipeline import train
from mona_pipeline.models import BACKBONE
from mona_pipeline.trained import load_trained
from tests.conftest import write_params


@pytest.mark.parametrize("gpus, amx, expected", [(1, False, "mixed_float16"), (0, True, "mixed_bfloat16"),
                                                 (0, False, "float32")])
def test_auto_precision_follows_the_hardware(gpus, amx, expected):
    # bf16 on a CPU only with AMX: with AVX512_BF16 alone float32 trained faster (bench.train_precision)
    assert train.resolve_precision("auto", gpus=gpus, amx_cpu=amx) == expected


def test_explicit_precision_is_kept_and_bad_one_named():
    assert train.resolve_precision("float32", gpus=1) == "float32"
    with pytest.raises(ValueError, match="precision must be one of"):
        train.resolve_precision("half")


def test_class_weights_balance_the_classes():
    weights = train.class_weights({"mona": 20, "others": 180}, ["mona", "others"])
    assert weights == {0: pytest.approx(5.0), 1: pytest.approx(200 / 360)}
    assert 20 * weights[0] == pytest.approx(180 * weights[1])


def _with(params, **sections):
    return params.model_copy(update=sections)


def test_configuration_checks_stop_before_training(demo_project, tmp_path):
    _, params = demo_project
    models_dir = tmp_path / "models"
    too_big = _with(params, train=params.train.model_copy(update={"batch_size": 10_000}))
    with pytest.raises(train.ConfigurationError, match="batch_size .* lower train.batch_size"):
        train.check_configuration(train.plan_stage("gender", too_big, models_dir), too_big)
    with pytest.raises(train.ConfigurationError, match="starts from .*gender.*train stage 'gender' first"):
        train.check_configuration(train.plan_stage("lookalike", params, models_dir), params)
    empty_class = params.stages.target.model_copy(update={"classes": {"mona": ["nobody"], "others": ["*"]}})
    no_pictures = _with(params, stages=params.stages.model_copy(update={"target": empty_class}))
    with pytest.raises(train.ConfigurationError, match="built with other classes .*dvc repro shards"):
        train.check_configuration(train.plan_stage("baseline", params, models_dir), no_pictures)
    from mona_pipeline import ingest, shards
    rebuilt = _with(no_pictures, data=params.data.model_copy(update={"manifest_dir": tmp_path / "manifest"}),
                    shards=params.shards.model_copy(update={"dir": tmp_path / "shards"}))
    ingest.run_ingest(rebuilt.data, rebuilt.stages)
    shards.write_shards(rebuilt.data, rebuilt.shards, rebuilt.stages)
    with pytest.raises(train.ConfigurationError, match="class 'mona' has no train pictures.*folders \\['nobody'\\]"):
        train.check_configuration(train.plan_stage("baseline", rebuilt, models_dir), rebuilt)
    huge_input = _with(params, model=params.model.model_copy(update={"image_size": 512}))
    with pytest.raises(train.ConfigurationError, match="larger than the shards"):
        train.check_configuration(train.plan_stage("gender", huge_input, models_dir), huge_input)


def test_baseline_gets_the_whole_curriculum_budget(demo_project, tmp_path):
    _, params = demo_project  # tiny params: 1 + 1 epochs in each of the three stages
    plan = train.plan_stage("baseline", params, tmp_path)
    assert plan.parent is None and plan.data_stage == "target" and plan.head_epochs == 0 and plan.finetune_epochs == 6
    fixed = _with(params, train=params.train.model_copy(update={"baseline_epochs": 4}))
    assert train.plan_stage("baseline", fixed, tmp_path).finetune_epochs == 4


def stopped_after(callback: keras.callbacks.EarlyStopping, first: int, losses: list[float]) -> int | None:
    """The epoch (counted from 1) after which the callback stops a fit whose validation loss goes `losses`."""
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.stop_training = False  # as fit sets it
    callback.set_model(model)
    callback.on_train_begin()
    for epoch, loss in enumerate(losses, start=first):
        callback.on_epoch_end(epoch, {"val_loss": loss})
        if model.stop_training:
            return epoch + 1
    return None


def test_a_network_from_scratch_is_not_stopped_early_in_its_first_half(demo_project, tmp_path):
    _, params = demo_project
    worse_after_the_third = [1.0, 0.9, 0.8] + [0.8 + 0.01 * k for k in range(1, 61)]  # 63 epochs, as the baseline
    baseline = train.plan_stage("baseline", params, tmp_path)
    # A transfer stage stops 8 epochs after its best (the 3rd of its phase): the 11th, as seed 3's baseline did ...
    transfer = train.plan_stage("target", params, tmp_path)
    assert stopped_after(train.early_stopping(transfer, 3, 63, 8), 3, worse_after_the_third) == 3 + 11
    # ... from scratch it trains at least half its epochs, then the patience counts.
    assert stopped_after(train.early_stopping(baseline, 0, 63, 8), 0, worse_after_the_third) == 31 + 9
    assert stopped_after(train.early_stopping(baseline, 0, 63, 8), 0, [1.0 - 0.01 * k for k in range(63)]) is None


def test_batch_norm_calibration_sets_statistics_of_the_batch():
    inputs = keras.Input((4,))
    norm = keras.layers.BatchNormalization(momentum=0.99)
    model = keras.Model(inputs, norm(inputs))
    images = np.random.default_rng(0).normal(3.0, 2.0, (256, 4)).astype("float32")
    train.BatchNormCalibrator(model, images)()
    np.testing.assert_allclose(norm.moving_mean.numpy(), images.mean(axis=0), rtol=1e-4)
    np.testing.assert_allclose(norm.moving_variance.numpy(), images.var(axis=0), rtol=1e-3)
    assert norm.momentum == 0.99  # restored


def test_two_stage_chain_under_prefect(demo_project, tmp_path, prefect_harness, monkeypatch):
    from flows.train import train_flow

    root, params = demo_project
    small = _with(params, model=params.model.model_copy(update={"architecture": "compactcnn", "width": 0.25}))
    params_file = write_params(tmp_path / "params.yaml", small)
    monkeypatch.chdir(tmp_path)  # models/ is written relative to the working directory
    gender = train_flow("gender", params_file)
    lookalike = train_flow("lookalike", params_file)
    assert gender["class_names"] == ["female", "male"] and lookalike["class_names"] == ["lookalike", "different"]
    assert lookalike["parent"] == "models/gender"
    for stage in ("gender", "lookalike"):
        folder = tmp_path / "models" / stage
        assert {"model.keras", "metadata.json", "curves.png"} <= {p.name for p in folder.iterdir()}
        # dvclive's curves, one row per epoch of both phases, for `dvc plots diff`
        live = tmp_path / "reports" / "train" / stage
        epochs = (live / "plots" / "metrics" / "eval" / "loss.tsv").read_text().splitlines()
        assert epochs[0].split("\t") == ["step", "loss"] and len(epochs) == 1 + 2  # a row per epoch, no timestamps
        kept = json.loads((folder / "metadata.json").read_text())["metrics"]
        assert set(kept) == {"accuracy", "val_accuracy", "val_loss", "best_epoch"}
    metadata = json.loads((tmp_path / "models/lookalike/metadata.json").read_text())
    assert metadata["precision_policy"] == "float32" and metadata["image_size"] == 32
    assert len(metadata["history"]["val_loss"]) == metadata["epochs"] == 2
    # Transfer: the lookalike model started from the gender backbone (same architecture, new head).
    parent = load_trained(tmp_path / "models/gender").network
    child = load_trained(tmp_path / "models/lookalike").network
    assert [w.shape for w in parent.get_layer(BACKBONE).weights] == [w.shape for w in child.get_layer(BACKBONE).weights]


def test_same_seed_trains_the_same_model(demo_project, tmp_path, monkeypatch):
    import warnings

    _, params = demo_project
    small = _with(params, model=params.model.model_copy(update={"architecture": "compactcnn", "width": 0.25}))
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        first = train.train_stage("gender", small, tmp_path / "a")
    # Keras's "ran out of data" is how it learns an unstated length, not an epoch cut short: no line of it,
    # and every epoch ran (early stopping aside: patience 2 of 2 epochs cannot stop)
    assert not [warning for warning in said if "ran out of data" in str(warning.message)]
    assert first.epochs == 2 and len(first.history["loss"]) == 2
    second = train.train_stage("gender", small, tmp_path / "b")
    assert first.history["val_loss"] == second.history["val_loss"]
    a = load_trained(tmp_path / "a" / "gender").network
    b = load_trained(tmp_path / "b" / "gender").network
    for left, right in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(left, right)


def test_the_target_stage_averages_its_weights_and_the_baseline_does_not(demo_project, tmp_path):
    from mona_pipeline.config import Params

    shipped = Params()  # the shipped defaults (params.yaml restates them)
    assert train.plan_stage("target", shipped, tmp_path).ema_momentum == 0.99
    assert train.plan_stage("baseline", shipped, tmp_path).ema_momentum is None
    assert train.plan_stage("lookalike", shipped, tmp_path).ema_momentum is None


def test_weight_averaging_validates_and_saves_the_averaged_weights(demo_project, tmp_path, monkeypatch):
    """stages.<stage>.ema_momentum: training steps are the raw weights' (about the same losses as without it), but validation and
    the saved model (the best epoch's checkpoint) are the moving average's, which at momentum 0.999 stays next to
    its first step while the raw weights move on."""
    _, params = demo_project
    small = _with(params, model=params.model.model_copy(update={"architecture": "compactcnn", "width": 0.25}))
    gender = small.stages.gender.model_copy(update={"ema_momentum": 0.999})
    averaged = _with(small, stages=small.stages.model_copy(update={"gender": gender}))
    monkeypatch.chdir(tmp_path)
    keras.utils.set_random_seed(small.train.seed)
    start = {w.path: w.numpy() for w in train.start_model(train.plan_stage("gender", small, tmp_path), small).trainable_weights}
    keras.backend.clear_session()

    def trained(name: str, stage_params) -> tuple[dict, float]:
        history = train.train_stage("gender", stage_params, tmp_path / name).history
        network = load_trained(tmp_path / name / "gender").network
        assert {w.path for w in network.trainable_weights} == set(start)
        return history, sum(float(np.abs(w.numpy() - start[w.path]).sum()) for w in network.trainable_weights)

    (raw_history, raw), (ema_history, ema) = trained("raw", small), trained("ema", averaged)
    # (Keras swaps the two sets of weights by adding and subtracting them: equal up to float rounding)
    assert ema_history["loss"] == pytest.approx(raw_history["loss"], rel=1e-4)
    assert ema_history["val_loss"] != raw_history["val_loss"]
    assert 0 < ema < 0.5 * raw


def test_two_trainings_in_separate_processes_with_the_real_policy_give_the_same_weights(demo_project, tmp_path):
    """What `dvc repro` does twice: `mona train` in a fresh process, the precision policy `auto` (bf16 on a
    CPU with bf16 instructions), the default network and the real data path (shards, cache, augmentation)."""
    import hashlib
    import subprocess
    import sys

    from tests.conftest import write_params

    _, params = demo_project
    stage = params.stages.gender.model_copy(update={"head_epochs": 0, "finetune_epochs": 1})
    real = _with(params, train=params.train.model_copy(update={"precision": "auto"}),
                 stages=params.stages.model_copy(update={"gender": stage}))
    params_file = write_params(tmp_path / "params.yaml", real)
    digests, folders = [], []
    runs = {}  # both at once: the same weights even while another training competes for the cores
    for run in ("first", "second"):
        (tmp_path / run).mkdir()
        runs[tmp_path / run] = subprocess.Popen(
            [sys.executable, "-m", "mona_pipeline.cli", "--params", str(params_file), "train", "gender"],
            cwd=tmp_path / run, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    for folder, process in runs.items():
        output = process.communicate(timeout=600)[0].decode(errors="replace")
        assert process.returncode == 0, output[-3000:]
        network = load_trained(folder / "models" / "gender").network
        digests.append(hashlib.sha256(b"".join(w.tobytes() for w in network.get_weights())).hexdigest())
        # ... and the folder DVC hashes, file by file (Keras writes its save time into model.keras)
        folders.append({path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
                        for path in sorted((folder / "models" / "gender").rglob("*")) if path.is_file()})
    assert digests[0] == digests[1]
    assert folders[0] == folders[1]


def test_lookalike_weight_weighs_the_confusable_negatives_on_top_of_the_class_weights(demo_project):
    """train.lookalike_weight: the target stage's batches carry per-picture weights; a look-alike of another
    character weighs `hard` times its class weight, the target and the other characters their class weight."""
    from mona_pipeline.ingest import read_manifest
    from mona_pipeline.shards import make_dataset

    _, params = demo_project
    class_weight = {0: 3.0, 1: 0.5}
    dataset = make_dataset(params.shards.dir, "train", "target", 8, params.model.image_size, training=False,
                           sample_weight=train.lookalike_weights(class_weight, 4.0))
    weights = np.concatenate([w.numpy() for _, _, w in dataset])
    rows = [r for r in read_manifest(params.data.manifest_dir).to_pylist()
            if r["split"] == "train" and r["label_target"] >= 0]
    # A tile negative (shards.tile_negatives per "others" picture) weighs its class weight alone: a crop of a
    # look-alike's picture is often only her background.
    tiles = params.shards.tile_negatives * sum(r["label_target"] == 1 for r in rows)
    expected = sorted([3.0 if r["label_target"] == 0 else 0.5 * (4.0 if r["label_lookalike"] == 0 else 1.0)
                       for r in rows] + [0.5] * tiles)
    assert sorted(weights.tolist()) == pytest.approx(expected)
    assert 2.0 in weights and 0.5 in weights and 3.0 in weights  # all three kinds are in the tiny demo

    plain = _with(params, train=params.train.model_copy(update={"lookalike_weight": 1.0}))
    heavy = _with(params, train=params.train.model_copy(update={"lookalike_weight": 4.0}))
    plan = train.plan_stage("target", plain, Path("models"))
    assert train.load_stage_data(plan, plain).class_weight is not None  # Keras applies the class weights
    weighted = train.load_stage_data(plan, heavy)
    assert weighted.class_weight is None and len(weighted.train.element_spec) == 3
    assert len(train.load_stage_data(train.plan_stage("lookalike", heavy, Path("models")), heavy).train.element_spec) == 2


def test_a_stage_trains_with_weighted_lookalikes(demo_project, tmp_path, monkeypatch):
    _, params = demo_project
    target = params.stages.target.model_copy(update={"head_epochs": 0, "finetune_epochs": 1})
    small = _with(params, model=params.model.model_copy(update={"architecture": "compactcnn", "width": 0.25}),
                  train=params.train.model_copy(update={"lookalike_weight": 3.0, "baseline_epochs": 1}),
                  stages=params.stages.model_copy(update={"target": target}))
    monkeypatch.chdir(tmp_path)
    weighted = train.train_stage("baseline", small, tmp_path / "weighted")
    plain = _with(small, train=small.train.model_copy(update={"lookalike_weight": 1.0}))
    unweighted = train.train_stage("baseline", plain, tmp_path / "plain")
    assert weighted.epochs == unweighted.epochs == 1 and np.isfinite(weighted.history["loss"][0])
    # Same seed, same batches: only the look-alikes' weight differs, and so does the loss it trained on.
    assert weighted.history["loss"][0] != pytest.approx(unweighted.history["loss"][0], rel=1e-3)


def test_the_validation_threshold_rule_stores_the_cut_that_reaches_the_precision(demo_project):
    """stages.target.threshold_rule: validation makes P a precision: the stored threshold is the lowest
    calibrated score at which the validation split's precision reaches it."""
    _, params = demo_project
    fixed = params.stages.target
    rule = fixed.model_copy(update={"threshold_rule": "validation", "threshold": 0.9})
    truth = np.array([True, True, True, False, True, False, False])
    scores = np.array([0.99, 0.97, 0.93, 0.92, 0.80, 0.60, 0.10])
    assert train.decision_threshold(fixed, truth, scores) == fixed.threshold
    # At 0.93 three of three are the target; at 0.80, four of five (0.8 < 0.9): the cut is 0.93.
    assert train.decision_threshold(rule, truth, scores) == 0.93
    unreachable = rule.model_copy(update={"threshold": 0.999})
    assert train.decision_threshold(unreachable, np.array([False, True]), np.array([0.99, 0.5])) == 0.999
