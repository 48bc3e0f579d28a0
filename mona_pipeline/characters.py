"""More characters than the target: each trained like the target, into a model of her own.

    params.characters["stella"].tags          # ["stella"]: her folders under data/raw
    python -m flows.train stella              # models/stella (dvc repro: the stage train_character@stella)
    mona sort ~/Pictures --out ~/sorted --model models/target --model models/stella

Her model is the target stage again: it starts from models/lookalike (the curriculum's second stage, which
already tells look-alikes apart) and trains on the target stage's pictures (the same shards: nothing is
rebuilt), relabelled from each picture's folder tag. Her tags are the positive class; every other tag of the
target stage, the target's own included, is "others". Tiles cut from her own pictures are left out (they may
show her), and so are a review's rejected pictures (`*_rejected`: a false alarm for the target may be her).
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf

from mona_pipeline.config import REJECTED_SUFFIX, CharacterParams
from mona_pipeline.shards import TILE_MARK, parse_example, read_index


def character_label(character: CharacterParams):
    """A parsed example's class for the character's model: 0 hers, 1 others, -1 left out (not a target-stage
    picture, a tile of one of her pictures, or a rejected one)."""
    tags = tf.constant(character.tags)

    def label(example: dict[str, tf.Tensor]) -> tf.Tensor:
        path = example["path"]
        tag = tf.strings.split(path, "/")[0]
        hers = tf.reduce_any(tf.equal(tag, tags))
        tile = tf.strings.regex_full_match(path, f".*{TILE_MARK}[0-9]+")
        rejected = tf.strings.regex_full_match(tag, f".*{REJECTED_SUFFIX}")
        left_out = (example["label_target"] < 0) | rejected | (hers & tile)
        return tf.where(left_out, tf.constant(-1, tf.int64), tf.where(hers, tf.constant(0, tf.int64),
                                                                      tf.constant(1, tf.int64)))

    return label


def character_counts(shard_dir: Path, split: str, character: CharacterParams, class_names: list[str]) -> dict[str, int]:
    """Pictures per class of the character's model in a split (one pass over the split's records, no decoding)."""
    files = [str(shard_dir / entry["file"]) for entry in read_index(shard_dir)["shards"] if entry["split"] == split]
    label = character_label(character)
    counts = [0, 0]
    for record in tf.data.TFRecordDataset(files):
        value = int(label(parse_example(record)))
        if value >= 0:
            counts[value] += 1
    return dict(zip(class_names, counts))
