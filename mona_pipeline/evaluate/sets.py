"""The labelled sets an evaluation scores, and one model's scores on a set (whole pictures and tiles apart).

    labelled = read_labelled_folder(Path("data/test"))        # labels.csv: path, target[, kind, part, ...]
    set_scores = score_set(scorer, labelled, 64, 64_000_000, params.tiling)
    scores = set_scores.pooled(params.tiling, threshold)      # what a sort with that tiling would score
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mona_pipeline.config import REJECTED_SUFFIX, Params, TilingParams
from mona_pipeline.evaluate.labels import LabelsError, read_label_rows, shows_target  # noqa: F401
from mona_pipeline.inference import Panel, Scorer, box_text, read_files, score_stream
from mona_pipeline.ingest import read_manifest
from mona_pipeline.preprocess import decode_for_model, prepare

logger = logging.getLogger(__name__)

SIZE_CLASSES = (("small", 0.0, 0.25), ("medium", 0.25, 0.5), ("large", 0.5, float("inf")))  # by target height


@dataclass
class LabelledSet:
    """Pictures with the truth: paths, shows-the-target, and kind (target | lookalike | other | none)."""

    name: str
    paths: list[Path]
    truth: np.ndarray
    kinds: list[str]
    parts: list[str] | None = None  # which part of the test archive (in_distribution, or what is held out)
    target_heights: list[float | None] | None = None  # the target's height / the picture's, where it shows


def size_class(height: float | None) -> str | None:
    """small (< 25% of the picture height), medium (< 50%) or large; None when the height is unknown."""
    if height is None:
        return None
    return next(name for name, low, high in SIZE_CLASSES if low <= height < high)


def read_labelled_folder(folder: Path, name: str = "test", character: str | None = None,
                         lookalikes: list[str] = ()) -> LabelledSet:
    """A folder with labels.csv (columns path, target [0/1], optional kind, part, target_height).

    Args:
        character: judge another character than the target (params.characters): the truth is whether the
            characters column names her, and a picture without her is a look-alike when it shows one of
            `lookalikes` (the lookalike stage's first class). Parts and heights are the target's: left out.
    Raises:
        LabelsError: no labels.csv, or it lacks the columns path and target (or characters, for a character).
    """
    rows = read_label_rows(folder)
    if character is not None:
        if "characters" not in rows[0]:
            raise LabelsError(f"{folder / 'labels.csv'} has no characters column (';'-separated names): it is needed "
                              f"to evaluate {character!r}")
        shown = [set(filter(None, (row["characters"] or "").split(";"))) for row in rows]
        truth = np.array([character in names for names in shown])
        kinds = ["target" if hers else "lookalike" if names & set(lookalikes) else "other" if names else "none"
                 for hers, names in zip(truth, shown)]
        return LabelledSet(name, [folder / row["path"] for row in rows], truth, kinds)
    truth = np.array([shows_target(row) for row in rows])
    kinds = [row.get("kind") or ("target" if t else "other") for row, t in zip(rows, truth)]
    parts = [row.get("part") or "in_distribution" for row in rows]
    heights = [float(row["target_height"]) if (row.get("target_height") or "").strip() else None for row in rows]
    return LabelledSet(name, [folder / row["path"] for row in rows], truth, kinds, parts, heights)


def validation_set(params: Params, character: str | None = None) -> LabelledSet:
    """The stage-3 validation split; a non-target picture is a look-alike when stage 2 calls it one.
    For a character (params.characters), the truth is her tags, and rejected pictures are left out as her
    training leaves them out (characters.character_label)."""
    rows = [r for r in read_manifest(params.data.manifest_dir).to_pylist()
            if r["split"] == "validation" and r["label_target"] >= 0
            and not (character and r["tag"].endswith(REJECTED_SUFFIX))]
    truth = np.array([r["tag"] in params.characters[character].tags if character else r["label_target"] == 0
                      for r in rows])
    kinds = ["target" if t else "lookalike" if r["label_lookalike"] == 0 else "other" for r, t in zip(rows, truth)]
    return LabelledSet("validation", [params.data.raw_dir / r["path"] for r in rows], truth, kinds)


@dataclass
class SetScores:
    """One model's scores on a set, whole pictures and tiles apart (NaN: unreadable, or no tiles)."""

    whole: np.ndarray
    tiles: np.ndarray  # the best tile's score of every picture the tiling grid covers
    boxes: list[str | None]  # where that best tile is (`inference.box_text`)
    pictures_per_second: float

    def decided(self, tiling: TilingParams, threshold: float) -> np.ndarray:
        """Per picture: whether its best tile decides it under `tiling` at `threshold` (`tile_decides`)."""
        return np.array([not np.isnan(tile) and tiling.tile_decides(whole, tile, threshold)
                         for whole, tile in zip(self.whole, self.tiles)], bool)

    def pooled(self, tiling: TilingParams, threshold: float) -> np.ndarray:
        """The scores `score_stream` gives with `tiling` at the decision threshold: the best tile's where it
        decides, else the whole picture's."""
        return np.where(self.decided(tiling, threshold), self.tiles, self.whole)

    def boxes_used(self, tiling: TilingParams, threshold: float) -> list[str | None]:
        """The tile box of each picture a tile decided (None where the whole picture's score stands)."""
        return [box if decided else None for box, decided in zip(self.boxes, self.decided(tiling, threshold))]

    def tiled_share(self, tiling: TilingParams, threshold: float) -> float:
        """Share of the readable pictures whose tiles `tiling` scores."""
        readable = ~np.isnan(self.whole)
        if tiling.mode == "off" or not readable.any():
            return 0.0
        looked = sum(not np.isnan(t) and tiling.needs_tiles(w, threshold)
                     for w, t in zip(self.whole[readable], self.tiles[readable]))
        return looked / int(readable.sum())


def score_set(scorer: Scorer, labelled: LabelledSet, batch_size: int, max_pixels: int,
              tiling: TilingParams) -> SetScores:
    """One model's `score_models`."""
    return score_models(Panel([scorer]), labelled, batch_size, max_pixels, tiling)[0]


def score_models(panel: Panel, labelled: LabelledSet, batch_size: int, max_pixels: int,
                 tiling: TilingParams) -> list[SetScores]:
    """Per model of `panel`: every picture's whole score and, with `tiling`'s grid, its best tile (all tiles of
    every picture scored, so any mode's scores follow: `SetScores.pooled`). The models share each picture's
    decode and its tiles' cut; each scores the tiles it would score alone (`inference.finer_tiles`), so its
    scores are those of a sort with it alone. pictures_per_second: that one pass's, all models together."""
    keys = [str(p) for p in labelled.paths]
    always = tiling.model_copy(update={"mode": "always"}) if tiling.mode != "off" else tiling
    start = time.perf_counter()
    # decisive 0: every picture's best tile is kept with its box; `SetScores.pooled` applies the threshold
    scored = {r.key: r for r in score_stream(panel, read_files(labelled.paths), batch_size, max_pixels,
                                             tiling=always, decisive=0.0)}
    seconds = time.perf_counter() - start
    for key in keys:
        if scored[key].error:
            logger.warning("%s could not be scored: %s", key, scored[key].error)

    def column(values: str, model: int) -> np.ndarray:
        return np.array([getattr(scored[k], values)[model] if scored[k].scores is not None and
                         getattr(scored[k], values) else np.nan for k in keys], float)

    return [SetScores(column("whole_scores", model), column("tile_scores", model),
                      [box_text(scored[k].boxes[model]) if scored[k].boxes else None for k in keys],
                      len(keys) / seconds) for model in range(len(panel))]


def time_one_by_one(scorer: Scorer, paths: list[Path], max_pixels: int) -> list[float]:
    """Seconds per picture the paper's way: read, decode, resize and predict one picture at a time."""
    seconds = []
    for index, path in enumerate(paths):
        start = time.perf_counter()
        data = prepare(path.read_bytes(), path.name, scorer.image_size, max_pixels)
        image = decode_for_model(data, scorer.image_size)
        float(scorer(image[None])[0])
        if index:  # the first call traces the graph: not a picture's time
            seconds.append(time.perf_counter() - start)
    return seconds
