"""Does a tile's mirror image tell a find from a false alarm? A replay on the test archive (issue 19).

A tile decides a picture when its softened score reaches P. Most of the tiles' false alarms are look-alikes
that one tile happens to frame well; a figure that is really her should score about as high when the tile is
flipped left to right (the training flips every picture, so the model has no side). This bench scores every
test tile and its mirror image once (the sort's grid, cut as the sort cuts them), then replays the sort's rule
(`TilingParams.tile_decides`, coarse to fine at the shipped bar) with a check added: the deciding tile's
mirror must score at least M (softened alike), at each `tiling.tile_temperature` T of `TEMPERATURES`:

- "best": the picture's best tile decides only if its mirror reaches M;
- "any": any tile whose score reaches P and whose mirror reaches M decides.

At sort time the check costs one more network pass per candidate tile, for the pictures a tile would keep.

    python -m bench.mirror_check --model models/target --test data/test [--out NAME]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bench.coarse_to_fine import retempered, scored_tiles, tile_scores
from bench.common import cpu_model, load_average, write_result

TEMPERATURES = [1.0, 1.25, 1.5]
MIRROR_BARS = [None, 0.5, 0.8, 0.9, 0.95]  # None: no check (the shipped rule)


def mirror_scores(model: Path, test: Path, pictures: list[dict], tiling, batch_size: int = 64) -> None:
    """Adds each picture's `mirror_scores`: every tile of `picture["boxes"]` cut as the sort cuts it, flipped
    left to right, scored and softened at `tiling.tile_temperature`."""
    import tensorflow as tf

    from mona_pipeline.config import MAX_IMAGE_PIXELS
    from mona_pipeline.inference import Scorer
    from mona_pipeline.metrics import temper
    from mona_pipeline.preprocess import prepare, tiles_for_model
    from mona_pipeline.trained import load_trained

    scorer = Scorer(load_trained(model))
    size, finest = scorer.image_size, min(tiling.scales)

    def generate():
        for index, picture in enumerate(pictures):
            if len(picture["boxes"]):
                data = prepare((test / picture["path"]).read_bytes(), picture["path"], size, MAX_IMAGE_PIXELS)
                yield index, data, picture["boxes"]

    dataset = tf.data.Dataset.from_generator(generate, output_signature=(
        tf.TensorSpec([], tf.int64), tf.TensorSpec([], tf.string), tf.TensorSpec([None, 4], tf.float32)))
    dataset = dataset.map(lambda index, data, boxes: (
        tf.fill([tf.shape(boxes)[0]], index),
        tf.image.flip_left_right(tiles_for_model(data, boxes, size, finest))), num_parallel_calls=tf.data.AUTOTUNE)
    rows: dict[int, list[float]] = {}
    for indices, images in dataset.ignore_errors().unbatch().batch(batch_size):
        scores = temper(np.asarray(scorer(images), np.float64).reshape(-1), tiling.tile_temperature)
        for index, score in zip(indices.numpy().tolist(), scores.tolist()):
            rows.setdefault(index, []).append(score)
    for index, picture in enumerate(pictures):
        picture["mirror_scores"] = np.asarray(rows.get(index, []), np.float64)


def replay(pictures: list[dict], tiling, threshold: float, mirror: float | None, rule: str) -> dict:
    tp = fp = fn = small = small_found = tiled = checks = 0
    for picture in pictures:
        whole, truth = picture["whole"], picture["target"]
        kept = whole >= threshold
        if not kept and tiling.needs_tiles(whole, threshold) and len(picture["boxes"]) and \
                len(picture["mirror_scores"]) == len(picture["tile_scores"]):
            tiled += 1
            mask = scored_tiles(picture, tiling.refine_from)
            scores, mirrors = picture["tile_scores"][mask], picture["mirror_scores"][mask]
            candidates = [row for row in (np.argsort(-scores) if rule == "any" else [int(np.argmax(scores))])
                          if tiling.tile_decides(whole, float(scores[row]), threshold)]
            checks += len(candidates) if mirror is not None else 0
            kept = any(mirror is None or mirrors[row] >= mirror for row in candidates)
        tp, fp, fn = tp + (kept and truth), fp + (kept and not truth), fn + (truth and not kept)
        if truth and picture["part"] == "small":
            small, small_found = small + 1, small_found + kept
    return {"tile_temperature": tiling.tile_temperature, "mirror": mirror, "rule": rule,
            "precision": round(tp / (tp + fp), 4) if tp + fp else None, "recall": round(tp / (tp + fn), 4),
            "f1": round(2 * tp / (2 * tp + fp + fn), 4), "false_alarms": fp,
            "small_recall": round(small_found / small, 3) if small else None,
            "mirror_checks_per_tiled_picture": round(checks / tiled, 2) if tiled else 0.0}


def main(argv: list[str] | None = None) -> None:
    from mona_pipeline.config import TilingParams, load_params

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("models/target"))
    parser.add_argument("--test", type=Path, default=Path("data/test"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--limit", type=int, default=None, help="the first N test pictures only (a quick look)")
    parser.add_argument("--out", default="mirror_check")
    args = parser.parse_args(argv)
    tiling = load_params(args.params).tiling if args.params.is_file() else TilingParams()
    load_start = load_average()
    pictures, scored = tile_scores(args.model, args.test, tiling, args.limit)
    mirror_scores(args.model, args.test, pictures, tiling)
    threshold = scored["threshold"]
    rows = [replay(pictures, tiling.model_copy(update={"mode": "off"}), threshold, None, "best")]
    for temperature in TEMPERATURES:
        at = tiling.model_copy(update={"tile_temperature": temperature})
        softened = [{**picture, "mirror_scores": retempered([{"tile_scores": picture["mirror_scores"]}],
                                                           tiling.tile_temperature, temperature)[0]["tile_scores"]}
                    for picture in retempered(pictures, tiling.tile_temperature, temperature)]
        for mirror in MIRROR_BARS:
            for rule in ("best", "any") if mirror is not None else ("best",):
                rows.append(replay(softened, at, threshold, mirror, rule))
    rows[0]["rule"] = "whole pictures only"
    for row in rows:
        print(row)
    write_result(args.out, {"model": str(args.model.resolve()), "test": str(args.test.resolve()), "cpu": cpu_model(),
                            "threshold": threshold, "tiling": tiling.model_dump(), **scored, "rows": rows},
                 load_start)


if __name__ == "__main__":
    main()
