"""Training input: steps/s of one stage fed three ways, same model, same batch size, one run.

    python -m bench.train_input [--steps 15] [--pairs 5] [--project .]

- shards: `make_dataset` over the TFRecord shards (what training uses);
- in_memory: the same augmented batches, materialised first (no loader cost at all);
- raw_folder: reading and decoding the original picture files every step;
- shards at twice the batch: does a bigger step keep both cores busier (pictures/s, not steps/s)?
Each side also reports the cores it kept busy: the process's CPU seconds (every thread, the input pipeline
included) over the wall seconds of the same repetitions (2.0 = both cores of this machine).
A shards/in-memory ratio near 1 means the model, not the loader, bounds training. Both ratios come from
interleaved repetitions (`common.compare_interleaved`): each side's model is built and traced once, then
each repetition is one `fit` of `--steps` steps. `--project` reads the data (raw pictures, manifest,
shards) of another checkout of the project, e.g. one where `make demo` has made them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import keras
import tensorflow as tf

from bench.common import compare_interleaved, load_average, ratio_text, write_result
from mona_pipeline.config import Params, load_params
from mona_pipeline.inference import decode_for_model
from mona_pipeline.ingest import read_manifest
from mona_pipeline.models import build_model
from mona_pipeline.shards import augment, make_dataset
from mona_pipeline.train import resolve_precision


def raw_folder_dataset(params, batch_size: int) -> tf.data.Dataset:
    rows = [r for r in read_manifest(params.data.manifest_dir).to_pylist() if r["split"] == "train"]
    paths = [str(params.data.raw_dir / r["path"]) for r in rows]
    labels = [max(0, r["label_target"]) for r in rows]
    size = params.model.image_size

    def load(path, label):
        # The project's decoder (JPEG at reduced scale, WebP via tensorflow-io), then the same augmentation.
        image = decode_for_model(tf.io.read_file(path), params.shards.image_size)
        seed = tf.random.uniform([2], 0, 2**31 - 1, dtype=tf.int64)
        return augment(tf.cast(image, tf.uint8), size, seed), label

    dataset = tf.data.Dataset.from_tensor_slices((paths, labels)).shuffle(len(paths)).repeat()
    return dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size).prefetch(tf.data.AUTOTUNE)


def in_project(params: Params, project: Path) -> Params:
    """The params with their relative data folders read from inside `project`."""
    def rebase(path: Path) -> Path:
        return path if path.is_absolute() else project / path

    data = params.data.model_copy(update={"raw_dir": rebase(params.data.raw_dir),
                                          "manifest_dir": rebase(params.data.manifest_dir)})
    shards = params.shards.model_copy(update={"dir": rebase(params.shards.dir)})
    return params.model_copy(update={"data": data, "shards": shards})


def build_fitter(params: Params, dataset: tf.data.Dataset, steps: int, per_step: int = 1):
    """A freshly built model traced on `dataset`, and a function that fits it `steps` more steps and returns
    the steps/s (times `per_step`: pass the batch size for pictures/s). Its `.cores` lists, per repetition, the
    process's CPU seconds over the wall seconds."""
    keras.utils.set_random_seed(0)
    model = build_model(params.model, 2)
    model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
    model.fit(dataset, steps_per_epoch=2, epochs=1, verbose=0, shuffle=False)  # trace (already shuffled)

    def steps_per_second() -> float:
        start, cpu_start = time.perf_counter(), time.process_time()
        model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)
        wall = time.perf_counter() - start
        steps_per_second.cores.append(round((time.process_time() - cpu_start) / wall, 3))
        return steps * per_step / wall

    steps_per_second.cores = []
    return steps_per_second


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=15, help="training steps per repetition")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--project", type=Path, default=Path("."), help="the checkout whose data is read")
    args = parser.parse_args(argv)
    load_start = load_average()
    params = in_project(load_params(args.params), args.project)
    policy = resolve_precision(params.train.precision)
    keras.mixed_precision.set_global_policy(policy)
    batch, size = params.train.batch_size, params.model.image_size
    shards = make_dataset(params.shards.dir, "train", "target", batch, size, training=True, repeat=True)
    cached = list(shards.take(16))  # 16 real augmented batches, held in memory
    in_memory = tf.data.Dataset.from_tensor_slices(
        (tf.concat([x for x, _ in cached], 0), tf.concat([y for _, y in cached], 0))).repeat().batch(batch)
    fitters = {name: build_fitter(params, dataset, args.steps) for name, dataset in (
        ("in_memory", in_memory), ("shards", shards), ("raw_folder", raw_folder_dataset(params, batch)))}
    comparisons = {
        f"{name}_vs_in_memory": compare_interleaved(fitters[name], fitters["in_memory"], a=name, b="in_memory",
                                                    unit="steps/s", pairs=args.pairs)
        for name in ("shards", "raw_folder")}
    double = make_dataset(params.shards.dir, "train", "target", 2 * batch, size, training=True, repeat=True)
    pictures = {"shards": build_fitter(params, shards, args.steps, per_step=batch),
                "shards_double_batch": build_fitter(params, double, args.steps, per_step=2 * batch)}
    comparisons["double_batch_vs_batch"] = compare_interleaved(
        pictures["shards_double_batch"], pictures["shards"], a="shards_double_batch", b="shards",
        unit="pictures/s", pairs=args.pairs)
    cores = {name: statistics.median(fitter.cores) for name, fitter in
             [*fitters.items(), ("shards_double_batch", pictures["shards_double_batch"])]}
    result = {"architecture": params.model.architecture, "image_size": size, "batch_size": batch,
              "precision_policy": policy, "steps_per_repetition": args.steps, "data": str(params.shards.dir),
              "comparisons": comparisons, "cores_busy_median": cores, "cores": os.cpu_count()}
    path = write_result("train_input", result, load_start)
    print(f"training input ({params.model.architecture}, batch {batch}, {policy}), median (min-max) of "
          f"{args.pairs} interleaved pairs:")
    for name, comparison in comparisons.items():
        print(f"  {name}: {ratio_text(comparison, 3)}; medians {comparison['medians']} {comparison['unit']}")
    print(f"  cores kept busy (median; this machine has {os.cpu_count()}): {cores}")
    print(f"-> {path}")
    return result


if __name__ == "__main__":
    main()
