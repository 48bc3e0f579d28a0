"""Training input: steps/s of one stage fed three ways, same model, same batch size, one run.

    python -m bench.train_input [--steps 40]

- shards: `make_dataset` over the TFRecord shards (what training uses);
- in_memory: the same augmented batches, materialised first (no loader cost at all);
- raw_folder: reading and decoding the original picture files every step.
A shards/in-memory ratio near 1 means the model, not the loader, bounds training.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import keras
import tensorflow as tf

from bench.common import write_result
from mona_pipeline.config import load_params
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


def steps_per_second(model, dataset, steps: int) -> float:
    model.fit(dataset, steps_per_epoch=5, epochs=1, verbose=0)  # trace and warm up
    start = time.perf_counter()
    model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)
    return steps / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args(argv)
    params = load_params(args.params)
    policy = resolve_precision(params.train.precision)
    keras.mixed_precision.set_global_policy(policy)
    batch, size = params.train.batch_size, params.model.image_size
    shards = make_dataset(params.shards.dir, "train", "target", batch, size, training=True, repeat=True)
    cached = list(shards.take(16))  # 16 real augmented batches, held in memory
    in_memory = tf.data.Dataset.from_tensor_slices(
        (tf.concat([x for x, _ in cached], 0), tf.concat([y for _, y in cached], 0))).repeat().batch(batch)
    rates = {}
    for name, dataset in (("in_memory", in_memory), ("shards", shards),
                          ("raw_folder", raw_folder_dataset(params, batch))):
        keras.utils.set_random_seed(0)
        model = build_model(params.model, 2)
        model.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy")
        rates[name] = steps_per_second(model, dataset, args.steps)
    result = {"architecture": params.model.architecture, "image_size": size, "batch_size": batch,
              "precision_policy": policy, "steps": args.steps,
              **{f"{name}_steps_s": round(rate, 3) for name, rate in rates.items()},
              "shards_vs_in_memory": round(rates["shards"] / rates["in_memory"], 3),
              "raw_folder_vs_in_memory": round(rates["raw_folder"] / rates["in_memory"], 3)}
    path = write_result("train_input", result)
    print(f"training input ({params.model.architecture}, batch {batch}, {policy}): in memory "
          f"{rates['in_memory']:.2f} steps/s, shards {rates['shards']:.2f} ({result['shards_vs_in_memory']:.2f}x), "
          f"raw folder {rates['raw_folder']:.2f} ({result['raw_folder_vs_in_memory']:.2f}x) -> {path}")
    return result


if __name__ == "__main__":
    main()
