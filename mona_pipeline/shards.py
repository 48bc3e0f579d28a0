"""shards: manifest -> TFRecord shards (train and validation apart) + index.json; and `make_dataset`.

    python -m flows.shards      # the DVC stage
    train_ds = make_dataset(Path("data/shards"), "train", "target", batch_size=32, image_size=128, training=True)

Each picture is decoded and resized once, to `shards.image_size` (the model
input plus a margin for random crops), re-encoded as JPEG and stored with the
label of every stage. A stage's dataset is a filter over the same shards
(label >= 0), never a copy. With `shards.tile_negatives`, each training picture
of the target stage's negative class also gives that many of its tiles (cut as a
sort's tiling cuts them), stored as target-stage negatives only: the crops a
sort scores are then no longer something training never saw.
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import os
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterator

import tensorflow as tf

from mona_pipeline.config import STAGE_ORDER, DataParams, ShardParams, StagesParams, TilingParams
from mona_pipeline.errors import UserError
from mona_pipeline.images import load_picture
from mona_pipeline.ingest import read_manifest
from mona_pipeline.preprocess import augment, encode_square, resize_for_model, tile_grid

logger = logging.getLogger(__name__)

INDEX_NAME = "index.json"


class ShardsMissing(UserError, FileNotFoundError):
    """The shards (or their index) a stage needs are not there: the shards stage has not run."""

SPLITS = ("train", "validation")
AUTOTUNE = tf.data.AUTOTUNE


def encode_for_shard(raw_path: Path, image_size: int, max_pixels: int, quality: int,
                     tile: tuple[str, int, TilingParams] | None = None) -> bytes:
    """Decode a picture, squash it to image_size x image_size (as the paper resizes), JPEG-encode it.

    Args:
        tile: (the picture's content hash, the tile's number, the tiling): encode one of its tiles instead,
            drawn from `preprocess.tile_grid` by a random stream of the hash and number (the same every run).
    """
    image = load_picture(raw_path.read_bytes(), raw_path.name, max_pixels).image
    if tile is not None:
        content_hash, number, tiling = tile
        boxes = tile_grid(image.width, image.height, tiling)
        if boxes:  # a picture too small for every scale stays whole: a second look at a negative
            x0, y0, x1, y1 = random.Random(f"{content_hash}:{number}").choice(boxes)
            image = image.crop((round(x0 * image.width), round(y0 * image.height), round(x1 * image.width),
                                round(y1 * image.height)))
    return encode_square(image, image_size, "JPEG", quality=quality)


TILE_MARK = "#tile"  # a tile row's path and content hash: the picture's, then #tile<n>


def tile_rows(rows: list[dict], stages: StagesParams, count: int) -> list[dict]:
    """`count` tile rows per row of the target stage's negative class: labelled for the target stage only."""
    negative = len(stages.target.class_names) - 1  # the second class: "others"
    return [{**row, "path": f"{row['path']}{TILE_MARK}{number}",
             "content_hash": f"{row['content_hash']}{TILE_MARK}{number}",
             "tile_of": (row["path"], row["content_hash"], number), **{f"label_{name}": -1 for name in STAGE_ORDER},
             "label_target": negative}
            for row in rows if row["label_target"] == negative for number in range(count)]


def _bytes_feature(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _int_feature(value: int) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))


def serialize_example(image: bytes, row: dict) -> bytes:
    features = {
        "image": _bytes_feature(image),
        "path": _bytes_feature(row["path"].encode()),
        "content_hash": _bytes_feature(row["content_hash"].encode()),
        **{f"label_{name}": _int_feature(row[f"label_{name}"]) for name in STAGE_ORDER},
    }
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def plan_shard_count(pictures: int, bytes_per_picture: float, target_mb: float, min_per_shard: int = 64) -> int:
    """Shards of about target_mb; at least a few (parallel reads) when there are enough pictures."""
    by_size = math.ceil(pictures * bytes_per_picture / (target_mb * 1e6))
    by_parallelism = min(4, pictures // min_per_shard)
    return max(1, by_size, by_parallelism)


def _encoded(rows: list[dict], raw_dir: Path, params: ShardParams, max_pixels: int,
             tiling: TilingParams) -> Iterator[tuple[dict, bytes]]:
    """Encode pictures (and tiles) in parallel threads (Pillow releases the GIL while decoding), in order."""
    def encode(row: dict) -> bytes:
        if "tile_of" in row:
            path, content_hash, number = row["tile_of"]
            return encode_for_shard(raw_dir / path, params.image_size, max_pixels, params.jpeg_quality,
                                    (content_hash, number, tiling))
        return encode_for_shard(raw_dir / row["path"], params.image_size, max_pixels, params.jpeg_quality)

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        yield from zip(rows, pool.map(encode, rows))


def write_split(rows: list[dict], split: str, raw_dir: Path, params: ShardParams, max_pixels: int,
                tiling: TilingParams = TilingParams()) -> list[dict]:
    """Write one split's shards, streaming; returns their index entries."""
    stream = _encoded(rows, raw_dir, params, max_pixels, tiling)
    head = [next(stream) for _ in range(min(64, len(rows)))]
    mean_bytes = sum(len(image) for _, image in head) / max(1, len(head))
    count = plan_shard_count(len(rows), mean_bytes + 200, params.target_shard_mb)
    entries = []
    items = itertools.chain(head, stream)
    writer, shard_number, written = None, -1, 0
    for position, (row, image) in enumerate(items):
        wanted = position * count // len(rows)
        if wanted != shard_number:
            if writer:
                writer.close()
            shard_number = wanted
            name = f"{split}-{shard_number:05d}-of-{count:05d}.tfrecord"
            writer = tf.io.TFRecordWriter(str(params.dir / name))
            entries.append({"file": name, "split": split, "pictures": 0, "bytes": 0})
        writer.write(serialize_example(image, row))
        entries[-1]["pictures"] += 1
        entries[-1]["bytes"] += len(image)
        written += 1
    if writer:
        writer.close()
    assert written == len(rows)
    return entries


def write_shards(data: DataParams, params: ShardParams, stages: StagesParams,
                 tiling: TilingParams = TilingParams()) -> dict:
    """The DVC stage: write every split's shards and index.json. Returns the index.

    Args:
        tiling: how a sort cuts tiles (its scales), for `params.tile_negatives`.
    """
    manifest = read_manifest(data.manifest_dir).to_pylist()
    params.dir.mkdir(parents=True, exist_ok=True)
    for old in params.dir.glob("*.tfrecord"):
        old.unlink()
    index = {"image_size": params.image_size, "shards": [], "counts": {},
             "stages": {name: stage.class_names for name, stage in stages.items()},
             "classes": {name: stage.classes for name, stage in stages.items()}}
    for split in SPLITS:
        # Content-hash order is a fixed pseudo-random order: every shard gets a mix of classes.
        rows = [r for r in manifest if r["split"] == split]
        if split == "train" and params.tile_negatives:
            rows += tile_rows(rows, stages, params.tile_negatives)
        rows.sort(key=lambda r: r["content_hash"])
        if rows:
            index["shards"] += write_split(rows, split, data.raw_dir, params, data.max_image_pixels, tiling)
        index.setdefault("tiles", {})[split] = sum("tile_of" in r for r in rows)
        index["counts"][split] = {
            name: {cls: sum(1 for r in rows if r[f"label_{name}"] == k) for k, cls in enumerate(stage.class_names)}
            for name, stage in stages.items()
        }
    (params.dir / INDEX_NAME).write_text(json.dumps(index, indent=2))
    return index


def read_index(shard_dir: Path) -> dict:
    path = shard_dir / INDEX_NAME
    if not path.is_file():
        raise ShardsMissing(f"no shard index at {path}: run the shards stage first (dvc repro shards)")
    return json.loads(path.read_text())


# ---------------------------------------------------------------- reading: make_dataset

FEATURES = {
    "image": tf.io.FixedLenFeature([], tf.string),
    "path": tf.io.FixedLenFeature([], tf.string),
    "content_hash": tf.io.FixedLenFeature([], tf.string),
    **{f"label_{name}": tf.io.FixedLenFeature([], tf.int64) for name in STAGE_ORDER},
}


def parse_example(record: tf.Tensor) -> dict[str, tf.Tensor]:
    return tf.io.parse_single_example(record, FEATURES)


def make_dataset(shard_dir: Path, split: str, stage: str, batch_size: int, image_size: int, training: bool,
                 seed: int = 42, shuffle_buffer: int = 2048, repeat: bool = False,
                 cache_mb: float = 1024.0, strong_augmentation: bool = False,
                 sample_weight: Callable[[dict[str, tf.Tensor]], tf.Tensor] | None = None,
                 label: Callable[[dict[str, tf.Tensor]], tf.Tensor] | None = None) -> tf.data.Dataset:
    """Read one split's shards as (images, labels) batches for one stage.

    Args:
        shard_dir: folder with index.json and the shards.
        split: "train" or "validation".
        stage: "gender", "lookalike" or "target"; pictures without a label for it are skipped.
        training: shuffle and augment (else a fixed order and a plain resize).
        strong_augmentation: with training, `preprocess.augment`'s strong set.
        cache_mb: when the split's decoded pictures fit in this many MB, they are decoded once and
            kept in memory, so later epochs only augment (0 turns it off).
        sample_weight: a picture's loss weight from its parsed example (its label_<stage> for every stage);
            with it the batches carry a third element, the float32 (B,) weights.
        label: a picture's class from its parsed example (default: its label_<stage>); -1 skips the picture
            (a character's model: `characters.character_label`).
    Returns:
        a dataset of (float32 (B, image_size, image_size, 3) in [0, 255], int32 (B,)[, float32 (B,)]).
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if stage not in STAGE_ORDER:
        raise ValueError(f"stage must be one of {STAGE_ORDER}, got {stage!r}")
    index = read_index(shard_dir)
    files = [str(shard_dir / entry["file"]) for entry in index["shards"] if entry["split"] == split]
    if not files:
        raise ShardsMissing(f"no {split} shards in {shard_dir}: rebuild them (dvc repro shards)")
    label_key = f"label_{stage}"
    label = label or (lambda example: example[label_key])
    pictures = sum(entry["pictures"] for entry in index["shards"] if entry["split"] == split)
    cache = pictures * index["image_size"] ** 2 * 3 / 1e6 <= cache_mb
    dataset = tf.data.Dataset.from_tensor_slices(files)
    if training:
        dataset = dataset.shuffle(len(files), seed=seed)
    # deterministic=True: the same seed must give the same batches (parallel reads stay parallel).
    dataset = dataset.interleave(tf.data.TFRecordDataset, cycle_length=min(len(files), 8),
                                 num_parallel_calls=AUTOTUNE, deterministic=True)
    dataset = dataset.map(parse_example, num_parallel_calls=AUTOTUNE)
    dataset = dataset.filter(lambda example: label(example) >= 0)

    def decode(example: dict) -> tuple[tf.Tensor, ...]:
        # (S, S, 3) uint8 picture, int32 label, int64 per-picture seed (from its content hash)[, float32 weight]
        decoded = (tf.io.decode_jpeg(example["image"], channels=3), tf.cast(label(example), tf.int32),
                   tf.strings.to_hash_bucket_fast(example["content_hash"], 2**31 - 1))
        return decoded if sample_weight is None else (*decoded, tf.cast(sample_weight(example), tf.float32))

    dataset = dataset.map(decode, num_parallel_calls=AUTOTUNE, deterministic=True)
    if cache:
        dataset = dataset.cache()
    if training:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    # Each element gets its own random draw *before* the parallel map, so augmentation does not
    # depend on thread timing: the same seed gives the same batches.
    draws = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)
    dataset = tf.data.Dataset.zip(dataset, draws)

    def to_pair(element: tuple, draw: tf.Tensor) -> tuple[tf.Tensor, ...]:
        image, label, picture_seed, *weight = element
        if training:
            seed_pair = tf.stack([picture_seed, draw % (2**31 - 1)])
            return augment(image, image_size, seed_pair, strong_augmentation), label, *weight
        return resize_for_model(image, image_size), label, *weight

    dataset = dataset.map(to_pair, num_parallel_calls=AUTOTUNE, deterministic=True)
    return dataset.batch(batch_size).prefetch(AUTOTUNE)


def class_counts(shard_dir: Path, split: str, stage: str) -> dict[str, int]:
    """Pictures per class of a stage in a split, from the index (no shard reading)."""
    return read_index(shard_dir)["counts"][split][stage]
