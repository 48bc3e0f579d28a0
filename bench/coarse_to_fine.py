"""Would a coarse-to-fine cascade make small-figure finding cheap? Fine tiles only where coarse tiles are warm.

The sort scores every tile of every scale (41 on a full-HD wallpaper, 28 of them at the finest scale) for a
picture that is not a keep as a whole. The whole picture's score says nothing about a small figure
(`bench/tiling_cascade.py`: a cascade on it lost most small figures), but a coarse tile shows a figure at
twice the size. This bench scores the test archive once, keeping every tile's score, then replays:

- whole pictures only (tiling off), and every tile of every scale (`refine_from: null`);
- coarse to fine from B (`tiling.refine_from: B`, the sort's `inference.finer_tiles`): a finer scale's tiles
  only where they overlap a tile of the scale before that scored B or more (softened, as the sort softens
  tiles; 1.0: the coarsest scale alone);
- the shipped bar at another `tiling.tile_temperature` T: every tile's score softened at T instead (the
  warm tiles, and so which finer tiles are scored, follow it).

For each: tiles scored per picture (what the sort pays for: a tile is about 1 ms of network on a 2-core CPU
and its cut), precision, recall, false alarms, and recall on small figures, decided by the sort's rule
(`TilingParams.tile_decides`).

    python -m bench.coarse_to_fine --model models/target --test data/test [--out NAME]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from bench.common import cpu_model, load_average, write_result

BARS = [0.01, 0.05, 0.1, 0.2, 0.5, 0.8, 1.0]  # 1.0: the coarsest scale alone
TEMPERATURES = [1.0, 1.25, 1.5, 2.0]  # tiling.tile_temperature, replayed at the shipped bar


def tile_scores(model: Path, test: Path, tiling, limit: int | None = None,
                batch_size: int = 64) -> tuple[list[dict], dict]:
    """Every test picture's whole score and each tile's (scale index, box, softened score); a picture that
    cannot be read is counted and left out (the evaluation counts it as a miss or a drop alike)."""
    from mona_pipeline.config import MAX_IMAGE_PIXELS
    from mona_pipeline.evaluate.labels import read_label_rows, shows_target
    from mona_pipeline.images import BadPicture
    from mona_pipeline.inference import Panel, Scorer, _Tiler, scoring_dataset
    from mona_pipeline.preprocess import picture_size, prepare, tile_grid_by_scale
    from mona_pipeline.trained import load_trained

    scorer = Scorer(load_trained(model))
    size = scorer.image_size
    pictures, unreadable = [], 0
    for row in read_label_rows(test)[:limit]:
        try:
            data = prepare((test / row["path"]).read_bytes(), row["path"], size, MAX_IMAGE_PIXELS)
        except (BadPicture, OSError):
            unreadable += 1
            continue
        width, height = picture_size(data)
        grids = tile_grid_by_scale(width, height, tiling)  # the sort's grid, coarsest scale first
        boxes = [box for grid in grids for box in grid]
        scales = [level for level, grid in enumerate(grids) for _ in grid]
        pictures.append({"path": row["path"], "target": shows_target(row), "part": row.get("part", ""),
                         "data": data, "boxes": np.asarray(boxes, np.float32).reshape(-1, 4),
                         "scales": np.asarray(scales, np.int32)})
    start = time.perf_counter()
    wholes = {}  # the sort's own whole-picture pipeline; a picture TF cannot decode is missing from it
    for sequences, batch in scoring_dataset(lambda: ((index, picture["data"], True)
                                                     for index, picture in enumerate(pictures)), size, batch_size):
        wholes.update(zip(sequences.numpy().tolist(), np.asarray(scorer(batch)).reshape(-1).tolist()))
    tiler = _Tiler(Panel([scorer]), tiling, (1.0,), batch_size, MAX_IMAGE_PIXELS)  # the sort's tile scoring
    scores = [rows[:, 0] for rows in tiler.score_tiles([picture["data"] for picture in pictures],
                                                        [picture["boxes"] for picture in pictures])]
    for index, picture in enumerate(pictures):
        picture["whole"] = wholes.get(index, 0.0)  # undecodable: scored nothing, as a miss or a drop
        picture["tile_scores"] = scores[index]
        del picture["data"]
    seconds = time.perf_counter() - start
    return pictures, {"pictures": len(pictures), "unreadable": unreadable,
                      "tiles": int(sum(len(picture["boxes"]) for picture in pictures)),
                      "scoring_seconds": round(seconds, 1), "threshold": scorer.trained.metadata.threshold}


def scored_tiles(picture: dict, bar: float | None) -> np.ndarray:
    """Which of the picture's tiles the sort's coarse-to-fine rule (`inference.finer_tiles`) scores, scale
    after scale: a boolean mask over them (bar None: every tile)."""
    from mona_pipeline.inference import finer_tiles

    boxes, scales, scores = picture["boxes"], picture["scales"], picture["tile_scores"][:, None]
    mask = scales == 0
    for level in range(1, int(scales.max()) + 1 if len(scales) else 0):
        previous = mask & (scales == level - 1)
        chosen, _ = finer_tiles(boxes[scales == level], boxes[previous], scores[previous], bar)
        mask |= (scales == level) & (boxes[:, None, :] == chosen[None, :, :]).all(axis=2).any(axis=1)
    return mask


def replay(pictures: list[dict], tiling, threshold: float, bar: float | None = None) -> dict:
    tp = fp = fn = small = small_found = tiles = tiled = 0
    for picture in pictures:
        whole, truth = picture["whole"], picture["target"]
        tile = None
        if tiling.needs_tiles(whole, threshold) and len(picture["boxes"]):
            mask = scored_tiles(picture, bar)
            tiles += int(mask.sum())
            tiled += 1
            tile = float(picture["tile_scores"][mask].max())
        kept = whole >= threshold or tiling.tile_decides(whole, tile, threshold)
        tp, fp, fn = tp + (kept and truth), fp + (kept and not truth), fn + (truth and not kept)
        if truth and picture["part"] == "small":
            small, small_found = small + 1, small_found + kept
    rule = "whole pictures only" if tiling.mode == "off" else "every tile" if bar is None else \
        f"coarse to fine, from {bar}"
    return {"rule": rule, "tile_temperature": tiling.tile_temperature, "tiled": round(tiled / len(pictures), 3),
            "tiles_per_picture": round(tiles / len(pictures), 1),
            "precision": round(tp / (tp + fp), 3) if tp + fp else None, "recall": round(tp / (tp + fn), 3),
            "false_alarms": fp, "small_recall": round(small_found / small, 3) if small else None}


def retempered(pictures: list[dict], scored_at: float, temperature: float) -> list[dict]:
    """The pictures with their tiles' scores softened at `temperature` instead of `scored_at` (exact:
    sigmoid(logit(s) * scored_at / temperature) undoes one softening and applies the other)."""
    from mona_pipeline.metrics import temper

    return [{**picture, "tile_scores": temper(picture["tile_scores"], temperature / scored_at)}
            for picture in pictures]


def main(argv: list[str] | None = None) -> None:
    from mona_pipeline.config import TilingParams, load_params

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("models/target"))
    parser.add_argument("--test", type=Path, default=Path("data/test"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--threshold", type=float, default=None, help="P (default: the model's threshold)")
    parser.add_argument("--limit", type=int, default=None, help="the first N test pictures only (a quick look)")
    parser.add_argument("--out", default="coarse_to_fine")
    args = parser.parse_args(argv)
    tiling = load_params(args.params).tiling if args.params.is_file() else TilingParams()
    load_start = load_average()
    pictures, scored = tile_scores(args.model, args.test, tiling, args.limit)
    threshold = args.threshold if args.threshold is not None else scored["threshold"]
    rows = [replay(pictures, tiling.model_copy(update={"mode": "off"}), threshold),
            replay(pictures, tiling, threshold)] + [replay(pictures, tiling, threshold, bar) for bar in BARS]
    rows += [replay(retempered(pictures, tiling.tile_temperature, temperature),
                    tiling.model_copy(update={"tile_temperature": temperature}), threshold, tiling.refine_from)
             for temperature in TEMPERATURES if temperature != tiling.tile_temperature]
    for row in rows:
        print(row)
    write_result(args.out, {"model": str(args.model.resolve()), "test": str(args.test.resolve()), "cpu": cpu_model(),
                            "threshold": threshold, "tiling": tiling.model_dump(), **scored, "rows": rows},
                 load_start)


if __name__ == "__main__":
    main()
