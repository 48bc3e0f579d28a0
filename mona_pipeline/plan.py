"""What `dvc repro` will run, roughly how long on this machine, and on what compute (`mona check`'s second half).

    stages = repro_plan(Path("."))                 # the changed stages and everything downstream of them
    timing = measure_machine(params)               # a few pictures decoded, a few training steps timed, here
    print(render_plan(stages, estimate_minutes(stages, report, params, timing), describe_compute(params)))

The times are measured on this machine each time: ingest's own decode of a few of the
project's pictures, and training steps of the configured network at its input size,
batch and precision. The rest (data loading, validation, evaluate's tiles) is a factor
fitted once to a whole `make demo` (STAGE_OVERHEAD); early stopping can only make a
stage shorter, so a training stage's time is its most.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from mona_pipeline.check import CheckReport
from mona_pipeline.config import Params, TilingParams
from mona_pipeline.ingest import inspect_file, list_files
from mona_pipeline.preprocess import tile_grid_by_scale

TRAINING_STAGES = {"train_gender": "gender", "train_lookalike": "lookalike", "train_target": "target",
                   "baseline": "baseline"}
# A whole stage's time / the measured part (decode, or the network's steps): data loading, augmentation,
# validation passes. Fitted to a fresh-clone `make demo` on a 2-core Intel Xeon (2026-12-02): with 474 ms a
# step measured here, gender took 2:11, lookalike 3:25, target 6:46, evaluate 5:28 (training 1.6-2.4x the
# steps, evaluate 0.6x the tiles' forward passes: they run in batches).
STAGE_OVERHEAD = {"ingest": 1.5, "shards": 1.5, "training": 1.6, "evaluate": 0.6}
STAGE_START_SECONDS = 20  # a stage process: Python, TensorFlow, Prefect's temporary server
TYPICAL_PICTURE = (1280, 720)  # the evaluation's tiles are counted for a picture of this size
# With coarse to fine (tiling.refine_from) a finer scale's tile is scored only under a warm coarser one: at
# 0.2, 0.19-0.42 of them (mean 0.29) on the demo's test archive, 3 seeds x 2 models (coarse_to_fine_bf16_*.json).
SHARE_REFINED = 0.3


@dataclass(frozen=True)
class MachineTiming:
    decode_seconds: float  # ingest's inspection of one picture (full decode, hashes)
    step_seconds: float  # one training step of the network at the project's batch and precision
    precision: str


def repro_plan(project: Path) -> list[str] | None:
    """The stages `dvc repro` would run: those `dvc status` finds changed, and every stage downstream of
    them, in dvc.yaml's order. None when it cannot tell (not a DVC project, DVC missing)."""
    try:
        result = subprocess.run([sys.executable, "-m", "dvc", "status", "--json"], cwd=project, capture_output=True,
                                text=True, timeout=120, env={**os.environ, "DVC_NO_ANALYTICS": "1"})
        changed = set(yaml.safe_load(result.stdout or "{}") or {}) if result.returncode == 0 else None
        stages = pipeline_stages(project)
    except (OSError, subprocess.SubprocessError, yaml.YAMLError, KeyError, TypeError, AttributeError):
        return None
    if changed is None:
        return None
    planned: list[str] = []
    for name, stage in stages.items():  # dvc.yaml lists a stage after the stages it depends on
        outs = [str(out) for stage_name in planned for out in _outs(stages[stage_name])]
        deps = [str(dep) for dep in stage.get("deps", [])]
        if name in changed or any(dep == out or dep.startswith(out.rstrip("/") + "/") for dep in deps for out in outs):
            planned.append(name)
    return planned


def pipeline_stages(project: Path) -> dict[str, dict]:
    """dvc.yaml's stages with each `foreach: ${section}` over a params.yaml mapping expanded as DVC expands it:
    one stage `<name>@<key>` per key, `${key}` put in (the characters' stages)."""
    stages = yaml.safe_load((project / "dvc.yaml").read_text())["stages"]
    params = yaml.safe_load((project / "params.yaml").read_text()) or {}
    expanded = {}
    for name, stage in stages.items():
        if "foreach" not in stage:
            expanded[name] = stage
            continue
        section = params.get(str(stage["foreach"]).removeprefix("${").removesuffix("}")) or {}
        text = yaml.safe_dump(stage["do"])
        for key in section:
            expanded[f"{name}@{key}"] = yaml.safe_load(text.replace("${key}", str(key)))
    return expanded


def _outs(stage: dict) -> list[str]:
    return [next(iter(out)) if isinstance(out, dict) else out for out in stage.get("outs", [])]


def measure_machine(params: Params, pictures: int = 8, steps: int = 4) -> MachineTiming:
    """Time ingest's decode of a few of the project's pictures and a few training steps of its network."""
    every = list(list_files(params.data.raw_dir))
    sample = every[:: max(1, len(every) // pictures)][:pictures]  # spread over the tags
    start = time.perf_counter()
    for path in sample:
        inspect_file(path, params.data.raw_dir, params.data.max_image_pixels)
    decode = (time.perf_counter() - start) / max(1, len(sample))
    step, precision = _training_step_seconds(params, steps)
    return MachineTiming(decode, step, precision)


def _training_step_seconds(params: Params, steps: int) -> tuple[float, str]:
    import keras
    import numpy as np

    from mona_pipeline.models import build_model
    from mona_pipeline.train import resolve_precision

    precision = resolve_precision(params.train.precision)
    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(precision)
    try:
        model = build_model(params.model, 2, name="timing")
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.SparseCategoricalCrossentropy())
        size, batch = params.model.image_size, params.train.batch_size
        images = np.random.default_rng(0).uniform(0, 255, (batch, size, size, 3)).astype("float32")
        labels = np.arange(batch) % 2
        model.train_on_batch(images, labels)  # the first steps build and trace the function
        model.train_on_batch(images, labels)
        start = time.perf_counter()
        for _ in range(steps):
            model.train_on_batch(images, labels)
        return (time.perf_counter() - start) / steps, precision
    finally:
        keras.mixed_precision.set_global_policy(previous)
        keras.backend.clear_session()


def estimate_minutes(stages: list[str], report: CheckReport, params: Params, timing: MachineTiming) -> dict[str, float]:
    """Each planned stage's rough minutes on this machine (training: at most, before early stopping)."""
    from mona_pipeline.train import plan_stage  # the stages' epochs, as training counts them (the baseline's too)

    cores = os.cpu_count() or 1
    files = sum(report.tags.values())
    forward = timing.step_seconds / params.train.batch_size / 3  # a forward pass: about a third of a step
    tiles = 1 + scored_tiles(params.tiling)
    test = report.test_pictures or 0
    seconds = {
        "ingest": files * timing.decode_seconds / cores * STAGE_OVERHEAD["ingest"],
        "shards": files * (1 + params.shards.tile_negatives) * timing.decode_seconds / cores * STAGE_OVERHEAD["shards"],
        "evaluate": 2 * (test + files * params.data.validation_fraction) * (timing.decode_seconds + tiles * forward)
        * STAGE_OVERHEAD["evaluate"],
    }
    for dvc_name, stage in TRAINING_STAGES.items():
        plan = plan_stage(stage, params, Path("models"))
        training = sum(report.classes.get(plan.data_stage, {}).values()) * (1 - params.data.validation_fraction)
        steps = (plan.head_epochs + plan.finetune_epochs) * math.ceil(training / params.train.batch_size)
        seconds[dvc_name] = steps * timing.step_seconds * STAGE_OVERHEAD["training"]
    for name in params.characters:  # each the target stage again (its pictures), and one model's evaluation
        plan = plan_stage(name, params, Path("models"))
        training = sum(report.classes.get("target", {}).values()) * (1 - params.data.validation_fraction)
        steps = (plan.head_epochs + plan.finetune_epochs) * math.ceil(training / params.train.batch_size)
        seconds[f"train_character@{name}"] = steps * timing.step_seconds * STAGE_OVERHEAD["training"]
        seconds[f"evaluate_character@{name}"] = seconds["evaluate"] / 2
    return {stage: (seconds.get(stage, 0.0) + STAGE_START_SECONDS) / 60 for stage in stages}


def scored_tiles(tiling: TilingParams) -> float:
    """Tiles scored for a TYPICAL_PICTURE that is not decided whole: every coarse tile, and every finer one or
    (coarse to fine) their usual share."""
    grids = tile_grid_by_scale(*TYPICAL_PICTURE, tiling)
    finer = sum(len(grid) for grid in grids[1:])
    return len(grids[0]) + finer * (1.0 if tiling.refine_from is None else SHARE_REFINED) if grids else 0.0


def describe_compute(params: Params) -> str:
    """The devices training will use, its precision policy and its distribution strategy."""
    import tensorflow as tf

    from mona_pipeline.train import cpu_supports_amx, cpu_supports_bfloat16, resolve_precision, resolve_strategy

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        devices = f"{len(gpus)} GPU ({', '.join(tf.config.experimental.get_device_details(gpu).get('device_name', gpu.name) for gpu in gpus)})"
    else:
        bf16 = ("AMX bf16 tiles" if cpu_supports_amx() else
                "AVX512_BF16 but no AMX (float32 trains faster)" if cpu_supports_bfloat16() else "no bf16 arithmetic")
        devices = f"CPU only: {_cpu_name()}, {os.cpu_count()} cores, {bf16}"
    strategy = resolve_strategy()
    replicas = strategy.num_replicas_in_sync
    spread = f"{type(strategy).__name__} over {replicas} devices" if replicas > 1 else "one device (no distribution)"
    return (f"compute: {devices}; precision {resolve_precision(params.train.precision)} (train.precision: "
            f"{params.train.precision}); strategy: {spread}")


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def render_plan(stages: list[str] | None, minutes: dict[str, float] | None, compute: str | None,
                timing: MachineTiming | None = None) -> str:
    lines = []
    if stages is None:
        lines.append("dvc repro: cannot tell what it would run here (not a DVC project, or `dvc status` failed)")
    elif not stages:
        lines.append("dvc repro: everything is up to date; it would run nothing")
    else:
        lines.append(f"dvc repro would run {len(stages)} stages:")
        for stage in stages:
            when = f"about {minutes[stage]:.0f} min" if minutes and minutes[stage] >= 1 else "under a minute" \
                if minutes else "?"
            at_most = (stage in TRAINING_STAGES or stage.startswith("train_character@")) and minutes
            lines.append(f"  {stage:16} {when}{' (at most)' if at_most else ''}")
        if minutes:
            lines.append(f"  {'in all':16} about {sum(minutes.values()):.0f} min on this machine")
    if timing is not None:
        lines.append(f"measured here: {timing.decode_seconds * 1000:.0f} ms to inspect a picture, "
                     f"{timing.step_seconds * 1000:.0f} ms per training step ({timing.precision})")
    if compute:
        lines.append(compute)
    return "\n".join(lines)
