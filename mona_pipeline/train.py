"""train: one transfer stage (gender -> lookalike -> target), or the no-curriculum baseline.

    python -m flows.train gender      # DVC stages: train_gender, train_lookalike, train_target, baseline

Stage k starts from stage k-1's saved model: the backbone is kept, the head
replaced for the new classes; the new head trains first with the backbone
frozen, then everything fine-tunes at a lower rate. Early stopping on
validation loss keeps the best weights. Curves go to dvclive in
reports/train/<stage>/ (`dvc plots diff` overlays experiments) and to a PNG in the
model folder; the kept epoch's numbers are in metadata.json, and evaluate puts them
in reports/metrics.json beside the test archive's (`dvc exp show`).
Unreasonable configurations stop before any training.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import keras
import numpy as np
import tensorflow as tf

from mona_pipeline.characters import character_counts, character_label
from mona_pipeline.config import STAGE_ORDER, CharacterParams, Params, TargetStageParams, digest
from mona_pipeline.errors import UserError
from mona_pipeline.figures import plot_curves
from mona_pipeline.metrics import fit_temperature, temper, threshold_for_precision
from mona_pipeline.models import BACKBONE, MonaCNNConfig, build_model, keras_seeds, replace_head
from mona_pipeline.shards import class_counts, make_dataset, read_index
from mona_pipeline.trained import MODEL_FILE, ModelMetadata, save_trained

logger = logging.getLogger(__name__)

CURVES_FILE = "curves.png"
MODELS_DIR = Path("models")  # models/<stage>/: dvc.yaml's outs
TRAINING_REPORTS = Path("reports/train")  # reports/train/<stage>/: dvclive's curves (plots/metrics/*.tsv)


class ConfigurationError(UserError, ValueError):
    """The training configuration cannot work; the message says what to change."""


# ---------------------------------------------------------------- precision and devices


def _cpu_flags() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_supports_bfloat16() -> bool:
    """True when the CPU has native bf16 arithmetic (AVX512_BF16 or AMX)."""
    flags = _cpu_flags()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cpu_supports_amx() -> bool:
    """True when the CPU has AMX bf16 tiles (Intel Xeon since Sapphire Rapids)."""
    return "amx_bf16" in _cpu_flags()


def resolve_precision(policy: str, gpus: int | None = None, amx_cpu: bool | None = None) -> str:
    """`auto` -> mixed_float16 on a GPU, mixed_bfloat16 on a CPU with AMX, else float32.

    AVX512_BF16 without AMX is not enough: on a 2-core AMD EPYC with it, float32 trains the shipped network
    1.64x as fast as mixed bfloat16 (`python -m bench.train_precision`, bench/results/train_precision.json).
    """
    allowed = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
    if policy not in allowed:
        raise ValueError(f"precision must be one of {allowed}, got {policy!r}")
    if policy != "auto":
        return policy
    gpus = len(tf.config.list_physical_devices("GPU")) if gpus is None else gpus
    if gpus:
        return "mixed_float16"
    return "mixed_bfloat16" if (cpu_supports_amx() if amx_cpu is None else amx_cpu) else "float32"


def resolve_strategy() -> tf.distribute.Strategy:
    """MirroredStrategy over several GPUs, else the default (one device)."""
    gpus = tf.config.list_physical_devices("GPU")
    return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()


# ---------------------------------------------------------------- configuration checks


@dataclass(frozen=True)
class StagePlan:
    """What one training run will do, checked before it starts."""

    name: str  # gender | lookalike | target | baseline | a character's name
    data_stage: str  # which labels it trains on
    parent: Path | None  # model to start from
    head_epochs: int
    finetune_epochs: int
    learning_rate: float
    finetune_learning_rate: float
    ema_momentum: float | None = None  # weight averaging (the stage's ema_momentum)
    character: CharacterParams | None = None  # another character: the target stage relabelled (characters.py)


def plan_stage(name: str, params: Params, models_dir: Path) -> StagePlan:
    """The plan for a stage; `baseline` is the target stage from scratch with the whole curriculum's epochs, and a
    character (params.characters) the target stage for her: from models/lookalike, her pictures relabelled."""
    if name in params.characters:
        character = params.characters[name]
        return StagePlan(name, "target", models_dir / "lookalike", character.head_epochs, character.finetune_epochs,
                         character.learning_rate, character.finetune_learning_rate, character.ema_momentum,
                         character=character)
    if name == "baseline":
        target = params.stages.target
        epochs = params.train.baseline_epochs or sum(s.head_epochs + s.finetune_epochs for _, s in params.stages.items())
        # Not the target stage's weight averaging: the baseline was measured without it, and is steady without it
        # (F1 sd 0.007 over 5 seeds, docs/results.md).
        return StagePlan("baseline", "target", None, 0, epochs, target.learning_rate, target.learning_rate)
    if name not in STAGE_ORDER:
        raise ConfigurationError(f"unknown stage {name!r}; allowed: {', '.join(trainable(params))}")
    stage = getattr(params.stages, name)
    position = STAGE_ORDER.index(name)
    parent = models_dir / STAGE_ORDER[position - 1] if position else None
    if parent is None:  # nothing to freeze: train the fresh network end to end at the head rate
        return StagePlan(name, name, None, 0, stage.head_epochs + stage.finetune_epochs,
                         stage.learning_rate, stage.learning_rate, stage.ema_momentum)
    return StagePlan(name, name, parent, stage.head_epochs, stage.finetune_epochs,
                     stage.learning_rate, stage.finetune_learning_rate, stage.ema_momentum)


def trainable(params: Params) -> tuple[str, ...]:
    """What `python -m flows.train` trains: the stages, the baseline and each character of params.characters."""
    return (*STAGE_ORDER, "baseline", *params.characters)


def plan_classes(plan: StagePlan, params: Params) -> list[str]:
    """The plan's class names, its positive class first: a character's are [its name, the target's negative]."""
    if plan.character is not None:
        return [plan.name, params.stages.target.class_names[1]]
    return getattr(params.stages, plan.data_stage).class_names


def plan_counts(plan: StagePlan, params: Params, split: str) -> dict[str, int]:
    """Pictures per class of the plan in a split."""
    if plan.character is not None:
        return character_counts(params.shards.dir, split, plan.character, plan_classes(plan, params))
    return class_counts(params.shards.dir, split, plan.data_stage)


def check_configuration(plan: StagePlan, params: Params) -> None:
    """Stop before training when the configuration is unreasonable, saying what to change."""
    shard_dir = params.shards.dir
    index = read_index(shard_dir)
    if params.model.image_size > index["image_size"]:
        raise ConfigurationError(
            f"model.image_size ({params.model.image_size}) is larger than the shards' pictures "
            f"({index['image_size']}); raise shards.image_size or lower model.image_size")
    if params.model.architecture == "monacnn":
        config = MonaCNNConfig(image_size=params.model.image_size)
        if config.feature_size() < 1:
            raise ConfigurationError(f"monacnn needs model.image_size >= 382 (got {params.model.image_size})")
    stage = getattr(params.stages, plan.data_stage)
    if index.get("classes", {}).get(plan.data_stage) != stage.classes:
        raise ConfigurationError(
            f"the shards in {shard_dir} were built with other classes for stage {plan.data_stage!r} "
            f"({index.get('classes', {}).get(plan.data_stage)}); rebuild them (dvc repro shards)")
    for split in ("train", "validation"):
        counts = plan_counts(plan, params, split)
        for class_name in plan_classes(plan, params):
            if counts.get(class_name, 0) == 0:
                if plan.character is not None:
                    raise ConfigurationError(
                        f"character {plan.name!r} has no {split} pictures of class {class_name!r}; add pictures "
                        f"to folders {plan.character.tags} under {params.data.raw_dir} (and dvc repro shards)")
                raise ConfigurationError(
                    f"stage {plan.data_stage!r} class {class_name!r} has no {split} pictures; add pictures to "
                    f"folders {stage.classes[class_name]} under {params.data.raw_dir} or change "
                    f"stages.{plan.data_stage}.classes")
    train_total = sum(plan_counts(plan, params, "train").values())
    if params.train.batch_size > train_total:
        raise ConfigurationError(
            f"train.batch_size ({params.train.batch_size}) is larger than stage {plan.name!r}'s "
            f"{train_total} training pictures; lower train.batch_size")
    if plan.head_epochs + plan.finetune_epochs == 0:
        raise ConfigurationError(f"stage {plan.name!r} has 0 epochs; set head_epochs or finetune_epochs")
    if plan.parent is not None and not (plan.parent / MODEL_FILE).is_file():
        raise ConfigurationError(
            f"stage {plan.name!r} starts from {plan.parent}, which has no {MODEL_FILE}; "
            f"train stage {plan.parent.name!r} first (dvc repro train_{plan.parent.name})")


def class_weights(counts: dict[str, int], class_names: list[str]) -> dict[int, float]:
    """Weights that make each class count as much as the others: total / (classes * count)."""
    total = sum(counts[name] for name in class_names)
    return {index: total / (len(class_names) * counts[name]) for index, name in enumerate(class_names)}


def data_digest(shard_dir: Path) -> str:
    return hashlib.sha256((shard_dir / "index.json").read_bytes()).hexdigest()[:16]


# ---------------------------------------------------------------- training


def all_layers(layer: keras.layers.Layer) -> Iterator[keras.layers.Layer]:
    """The layer and, depth first, every layer of the models nested in it (the backbone inside a stage)."""
    yield layer
    for inner in getattr(layer, "layers", []):
        yield from all_layers(inner)


class BatchNormCalibrator:
    """Re-estimates every trainable BatchNorm's moving mean and variance with the current weights.

    Moving statistics lag behind weights that change fast (training from scratch on a few hundred
    steps), and then inference-mode predictions are far worse than training-mode ones (measured:
    accuracy 0.83 -> 0.95 on the same pictures once recalibrated). One forward pass in training
    mode over a fixed calibration batch, with momentum 0, sets the statistics to that batch's
    exact mean and variance. No weight is trained; frozen BatchNorm layers are left alone.
    The pass is compiled once (momentum 0 is baked into the trace), so each call costs one
    batched forward pass.
    """

    def __init__(self, model: keras.Model, images: tf.Tensor):
        self.model, self.images = model, images
        self.norms = [layer for layer in all_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]
        self._forward = tf.function(lambda x: self.model(x, training=True))
        self._traced_for: tuple | None = None

    def __call__(self) -> None:
        active = tuple(layer.trainable for layer in self.norms)
        if not any(active):
            return
        if self._traced_for != active:  # which layers update is part of the trace
            self._forward = tf.function(lambda x: self.model(x, training=True))
            self._traced_for = active
        saved = [layer.momentum for layer in self.norms]
        for layer in self.norms:
            layer.momentum = 0.0
        self._forward(self.images)
        for layer, momentum in zip(self.norms, saved):
            layer.momentum = momentum


class RecalibratedValidation(keras.callbacks.Callback):
    """At each epoch end: recalibrate BatchNorm statistics, then validate, adding val_* to the logs
    (so EarlyStopping, ModelCheckpoint and dvclive that come after it see honest validation numbers)."""

    def __init__(self, calibrate: BatchNormCalibrator, validation: tf.data.Dataset):
        super().__init__()
        self.calibrate, self.validation = calibrate, validation

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.calibrate()
        results = self.model.evaluate(self.validation, verbose=0, return_dict=True)
        if logs is not None:
            logs.update({f"val_{key}": float(value) for key, value in results.items()})
        logger.info("epoch %d: %s", epoch + 1, {k: round(float(v), 4) for k, v in (logs or {}).items()})


def _compile(model: keras.Model, learning_rate, label_smoothing: float, ema_momentum: float | None) -> None:
    loss = keras.losses.CategoricalCrossentropy(label_smoothing=label_smoothing) if label_smoothing else \
        keras.losses.SparseCategoricalCrossentropy()
    optimizer = keras.optimizers.Adam(learning_rate, use_ema=True, ema_momentum=ema_momentum) if ema_momentum \
        else keras.optimizers.Adam(learning_rate)
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])


def _one_hot_if(dataset: tf.data.Dataset, label_smoothing: float) -> tf.data.Dataset:
    return dataset.map(lambda x, y, *w: (x, tf.one_hot(y, 2), *w)) if label_smoothing else dataset


@dataclass
class StageData:
    """What one stage trains and validates on."""

    train: tf.data.Dataset  # (B, S, S, 3) float32 augmented, labels (B,) (one-hot with label smoothing)[, weights]
    validation: tf.data.Dataset  # the same, plain resize, cached
    calibration: tf.Tensor  # (<= 256, S, S, 3): a fixed batch for BatchNorm recalibration
    class_weight: dict[int, float] | None  # None when the train batches carry their own weights
    steps_per_epoch: int


def lookalike_weights(class_weight: dict[int, float], hard: float):
    """Per-picture weights for the target task: the class weight, times `hard` for a picture of the negative
    class whose character is a look-alike (label_lookalike 0: the lookalike stage's first class)."""
    table = tf.constant([class_weight[index] for index in range(len(class_weight))], tf.float32)

    def weight(example: dict[str, tf.Tensor]) -> tf.Tensor:
        label = tf.cast(example["label_target"], tf.int32)
        confusable = tf.logical_and(label == 1, example["label_lookalike"] == 0)
        return tf.gather(table, label) * tf.where(confusable, hard, 1.0)

    return weight


def load_stage_data(plan: StagePlan, params: Params) -> StageData:
    shards, size, batch = params.shards.dir, params.model.image_size, params.train.batch_size
    smoothing = params.train.label_smoothing
    counts = plan_counts(plan, params, "train")
    weights = class_weights(counts, plan_classes(plan, params))
    # The class weights go through Keras (class_weight=) unless look-alikes weigh more: then per picture
    # (the target stage and the baseline; a character's model weighs its classes only).
    per_picture = plan.data_stage == "target" and params.train.lookalike_weight != 1.0 and plan.character is None
    label = character_label(plan.character) if plan.character is not None else None
    train_ds = make_dataset(shards, "train", plan.data_stage, batch, size, training=True,
                            seed=params.train.seed, shuffle_buffer=params.train.shuffle_buffer,
                            strong_augmentation=params.train.augmentation == "strong",
                            sample_weight=lookalike_weights(weights, params.train.lookalike_weight)
                            if per_picture else None, label=label)
    val_ds = make_dataset(shards, "validation", plan.data_stage, batch, size, training=False, label=label).cache()
    calibration = tf.concat([images for images, _ in make_dataset(
        shards, "train", plan.data_stage, 64, size, training=False, label=label).take(4)], axis=0)
    return StageData(_one_hot_if(train_ds, smoothing), _one_hot_if(val_ds, smoothing), calibration,
                     None if per_picture else weights, math.ceil(sum(counts.values()) / batch))


def start_model(plan: StagePlan, params: Params) -> keras.Model:
    """A fresh network, or the parent stage's backbone with a new head (the transfer)."""
    with resolve_strategy().scope(), keras_seeds(params.train.seed):
        if plan.parent is None:
            return build_model(params.model, 2, name=plan.name)
        parent = keras.models.load_model(plan.parent / MODEL_FILE)
        return replace_head(parent, params.model, 2, name=plan.name)


def early_stopping(plan: StagePlan, first: int, epochs: int, patience: int) -> keras.callbacks.EarlyStopping:
    """Early stopping for a phase of `epochs` epochs from epoch `first`. A network trained from scratch (gender,
    the baseline) is not stopped in the first half of its epochs: early in the decay its validation loss is
    still noisy, and a patience counted from there ended a baseline at epoch 16 of 63, its best at epoch 8,
    recall 0.02 (seed 3, docs/results.md). Its best epoch is still chosen over every epoch (fit_phases)."""
    start = first + epochs // 2 if plan.parent is None else 0
    return keras.callbacks.EarlyStopping("val_loss", patience=patience, start_from_epoch=start)


def fit_phases(model: keras.Model, plan: StagePlan, data: StageData, params: Params, out_dir: Path,
               live_dir: Path) -> dict:
    """Head phase (backbone frozen), then fine-tuning; keeps the best epoch's weights. Returns the history.

    Args:
        live_dir: dvclive's folder: one step per epoch over both phases (plots/metrics/{train,eval}/*.tsv).
    """
    from dvclive import Live
    from dvclive.keras import DVCLiveCallback

    calibrate = BatchNormCalibrator(model, data.calibration)
    checkpoint = out_dir / "best.weights.h5"
    history: dict[str, list[float]] = {}
    # dvcyaml=None: dvc.yaml registers these plots itself; save_dvc_exp=False: `dvc exp run` makes experiments.
    live = Live(dir=str(live_dir), dvcyaml=None, save_dvc_exp=False, report=None)
    # One checkpoint callback for both phases: it keeps the best epoch over the whole stage.
    keep_best = keras.callbacks.ModelCheckpoint(str(checkpoint), "val_loss", save_best_only=True,
                                                save_weights_only=True)
    phases = [(plan.head_epochs, plan.learning_rate, False), (plan.finetune_epochs, plan.finetune_learning_rate, True)]
    epoch = 0
    for epochs, learning_rate, backbone_trainable in phases:
        if epochs == 0:
            continue
        model.get_layer(BACKBONE).trainable = backbone_trainable
        # Cosine decay to ~0 at the phase's end: the weights settle, so do the BatchNorm statistics.
        schedule = keras.optimizers.schedules.CosineDecay(learning_rate, epochs * data.steps_per_epoch, alpha=0.02)
        _compile(model, schedule, params.train.label_smoothing, plan.ema_momentum)
        # With weight averaging, the averaged weights are swapped in at each epoch's end (and out at the next
        # one's start), so the BatchNorm statistics, validation, early stopping and the best epoch's
        # checkpoint are all the averaged model's.
        averaging = [keras.callbacks.SwapEMAWeights(swap_on_epoch=True)] if plan.ema_momentum else []
        callbacks = [*averaging, RecalibratedValidation(calibrate, data.validation),
                     early_stopping(plan, epoch, epochs, params.train.patience),
                     keep_best, DVCLiveCallback(live=live)]
        # shuffle=False: the dataset is already shuffled, reproducibly (Keras warns and ignores it otherwise).
        with warnings.catch_warnings():
            # Not a bug in the epoch count: the dataset's filter (pictures without this stage's label) hides its
            # length, so Keras ends the first epoch where the data ends, after every picture, and says so. Every
            # epoch sees each training picture once. Declaring the length instead (assert_cardinality) would
            # change how Keras draws its iterators, and with them the augmentation: other models (9119a6e).
            warnings.filterwarnings("ignore", message="Your input ran out of data", category=UserWarning)
            result = model.fit(data.train, epochs=epoch + epochs, initial_epoch=epoch, shuffle=False,
                               class_weight=data.class_weight, callbacks=callbacks, verbose=2)
        for key, values in result.history.items():
            history.setdefault(key, []).extend(float(v) for v in values)
        epoch += len(result.history["loss"])
    live.end()
    model.load_weights(checkpoint)
    checkpoint.unlink(missing_ok=True)
    model.get_layer(BACKBONE).trainable = True
    return history


def validation_scores(model: keras.Model, validation: tf.data.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """(truth: positive class?, the positive class's (index 0) probability) of every validation picture."""
    scores, truth = [], []
    for images, labels in validation:
        if labels.shape.rank == 2:  # one-hot (label smoothing)
            labels = tf.argmax(labels, axis=1)
        scores.append(model(images, training=False).numpy()[:, 0])
        truth.append(labels.numpy() == 0)
    return np.concatenate(truth), np.concatenate(scores)


def calibrate_temperature(truth: np.ndarray, scores: np.ndarray) -> float:
    """The temperature that makes the positive class's scores calibrated on validation."""
    return round(fit_temperature(truth, scores), 4)


def decision_threshold(stage: TargetStageParams, truth: np.ndarray, calibrated: np.ndarray) -> float:
    """The target model's stored threshold: `stage.threshold`, or under the `validation` rule the lowest
    calibrated score at which the validation split's precision reaches it (see TargetStageParams.threshold_rule)."""
    if stage.threshold_rule == "fixed":
        return stage.threshold
    chosen = threshold_for_precision(truth, calibrated, stage.threshold)
    if chosen is None:
        logger.warning("no threshold reaches precision %.2f on the validation split; keeping %.2f",
                       stage.threshold, stage.threshold)
        return stage.threshold
    return round(min(max(chosen["threshold"], 0.5), 0.9999), 4)


def train_stage(name: str, params: Params, models_dir: Path = MODELS_DIR,
                reports_dir: Path = TRAINING_REPORTS) -> ModelMetadata:
    """Train one stage (or `baseline`) and save models/<name>/{model.keras, metadata.json, curves.png}.

    Args:
        reports_dir: where reports/train/<name>/ (dvclive's curves) goes.
    Returns:
        the metadata written (class names, threshold, precision, digests, metrics, seconds).
    """
    plan = plan_stage(name, params, models_dir)
    check_configuration(plan, params)
    keras.utils.set_random_seed(params.train.seed)
    # Same seed, same model: without this, multithreaded reductions make CPU runs drift apart
    # (measured: test F1 of one configuration ranged 20%-72% over three runs).
    tf.config.experimental.enable_op_determinism()
    policy = resolve_precision(params.train.precision)
    keras.mixed_precision.set_global_policy(policy)
    stage = getattr(params.stages, plan.data_stage)
    class_names = plan_classes(plan, params)
    out_dir = models_dir / name
    out_dir.mkdir(parents=True, exist_ok=True)
    data = load_stage_data(plan, params)
    start = time.perf_counter()
    model = start_model(plan, params)
    live_dir = reports_dir / name
    history = fit_phases(model, plan, data, params, out_dir, live_dir)
    truth, scores = validation_scores(model, data.validation)
    temperature = calibrate_temperature(truth, scores)
    seconds = time.perf_counter() - start
    plot_curves(history, out_dir / CURVES_FILE, f"{name}: {' vs '.join(class_names)}")
    best = min(range(len(history["val_loss"])), key=history["val_loss"].__getitem__)
    is_target = plan.data_stage == "target"
    metadata = ModelMetadata(
        stage=name, class_names=class_names, positive_class=class_names[0],
        target=(name if plan.character is not None else params.target) if is_target else None,
        architecture=params.model.architecture,
        image_size=params.model.image_size, temperature=temperature,
        threshold=decision_threshold(stage, truth, temper(scores, temperature)) if is_target else 0.5,
        precision_policy=policy, parent=str(plan.parent) if plan.parent else None,
        params_digest=digest(params.model, params.train, stage, *([plan.character] if plan.character else [])),
        data_digest=data_digest(params.shards.dir),
        epochs=len(history["loss"]),
        metrics={"val_loss": history["val_loss"][best], "val_accuracy": history["val_accuracy"][best],
                 "accuracy": history["accuracy"][best], "best_epoch": best + 1},
        history=history)
    save_trained(model, metadata, out_dir)
    # Not in the metadata: the model folder is a DVC output, and the same training must give the same bytes.
    logger.info("stage %s: %d epochs in %.1f s (%s)", name, metadata.epochs, seconds, policy)
    keras.backend.clear_session()  # free memory before the next stage (the paper's last step)
    return metadata
