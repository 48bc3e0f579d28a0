"""Training speed by precision on this CPU: float32 against mixed bfloat16, same model, same batches, one run.

    python -m bench.train_precision [--steps 10] [--pairs 5]

`train.precision: auto` picks the policy a stage trains in; this measures which one is faster here. Both
models are built from params.yaml's `model` (the shipped network and input size) under their own policy and
traced once (`train_input.build_fitter`); each repetition is one `fit` of `--steps` steps on the same random
batches held in memory, so the loader costs neither side anything. The ratio is float32 steps/s over bfloat16 steps/s from
interleaved pairs (`common.compare_interleaved`): above 1 means float32 trains faster on this CPU.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from bench import train_input
from bench.common import compare_interleaved, load_average, ratio_text, write_result
from mona_pipeline.config import load_params
from mona_pipeline.train import cpu_supports_amx, cpu_supports_bfloat16, resolve_precision

POLICIES = ("float32", "mixed_bfloat16")


def batches(batch: int, size: int, count: int = 8) -> tf.data.Dataset:
    """`count` batches of random pixels and labels, repeated: the same input for both policies."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (count * batch, size, size, 3)).astype("float32")
    labels = rng.integers(0, 2, count * batch)
    return tf.data.Dataset.from_tensor_slices((images, labels)).repeat().batch(batch).prefetch(2)


def build_fitter(params, policy: str, dataset: tf.data.Dataset, steps: int):
    """`train_input.build_fitter` with the model built and compiled under `policy` (the global policy is put
    back afterwards): a function fitting `steps` more steps -> steps/s."""
    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(policy)
    try:
        return train_input.build_fitter(params, dataset, steps)
    finally:
        keras.mixed_precision.set_global_policy(previous)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=10, help="training steps per repetition")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    load_start = load_average()
    params = load_params(args.params)
    batch, size = params.train.batch_size, params.model.image_size
    dataset = batches(batch, size)
    fitters = {policy: build_fitter(params, policy, dataset, args.steps) for policy in POLICIES}
    comparison = compare_interleaved(fitters["float32"], fitters["mixed_bfloat16"], a="float32",
                                     b="mixed_bfloat16", unit="steps/s", pairs=args.pairs)
    result = {"architecture": params.model.architecture, "image_size": size, "batch_size": batch,
              "steps_per_repetition": args.steps, "cpu_bf16": cpu_supports_bfloat16(), "cpu_amx": cpu_supports_amx(),
              "auto_picks": resolve_precision("auto"), "float32_vs_bfloat16": comparison, "cores": os.cpu_count()}
    path = write_result("train_precision", result, load_start)
    print(f"training steps/s ({params.model.architecture} at {size} px, batch {batch}), float32 / mixed_bfloat16, "
          f"median (min-max) of {args.pairs} interleaved pairs: {ratio_text(comparison, 3)}; "
          f"medians {comparison['medians']}; auto picks {result['auto_picks']}")
    print(f"-> {path}")
    return result


if __name__ == "__main__":
    main()
