"""Scoring pictures with a trained model, streaming: shared by `evaluate` and `sort`, so both decide alike.

    scorer = Scorer(load_trained(Path("models/target")))
    for result in score_stream(scorer, items, batch_size=64, max_pixels=64_000_000):
        result.key, result.score, result.error

`items` yields (key, bytes). `preprocess.prepare` sniffs each header (cheap):
zero-byte, non-pictures and decompression bombs are refused there; formats and
modes TF cannot decode faithfully go through Pillow. Everything else is decoded
by TF in parallel (`preprocess.decode_for_model`). A picture TF fails on is
retried with Pillow, and if that fails too it comes out with its error; the
stream goes on.

With `tiling` (params.yaml's `tiling` section) a picture that needs it (`TilingParams.needs_tiles`: not
already a keep as a whole, large enough) is scored again as overlapping square tiles
(`preprocess.tile_grid`), decoded at the resolution its tiles need and batched through the same model.
With `tiling.refine_from` the scales go coarse to fine: a finer tile is scored only where it overlaps a
coarser tile that scored at least that (`finer_tiles`), which about halves the tiles on the demo.
A tile decides only when its score (softened by `tile_temperature`) reaches the decision threshold: then it
is the picture's score and `Scored.box` says which tile it was. Otherwise the score stays the whole
picture's, so scores below the threshold keep their calibrated meaning (a plain maximum over dozens of
tiles raised every picture's score: the demo's expected calibration error went from 0.09 to 0.33).
`evaluate` and `sort` both come through here, so they tile alike.

Several models score one stream as a `Panel`: each picture is read, prepared and decoded once, at the largest
input size, resized once per other size, and every model scores the same batch and the same coarsest tiles.
A finer tile is scored only by the models warm above it (`finer_tiles`, per model), so each model of a panel
scores the tiles it would score alone and decides alike. A sort for three characters then costs one decode,
not three. `Scored` carries one score (and box) per model; its
`score`, `box`, `whole_score` and `tile_score` are the first model's, which is all a one-model caller reads.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import tensorflow as tf

from mona_pipeline.config import MAX_IMAGE_PIXELS, TilingParams
from mona_pipeline.images import BadPicture
from mona_pipeline.metrics import temper
from mona_pipeline.preprocess import decode_for_model, picture_size, pillow_fallback, prepare, \
    tile_grid_by_scale, tiles_for_model
from mona_pipeline.trained import TrainedModel

logger = logging.getLogger(__name__)

AUTOTUNE = tf.data.AUTOTUNE


Box = tuple[float, float, float, float]  # a tile as fractions of the picture's width and height, (x0, y0, x1, y1)


@dataclass(frozen=True)
class Scored:
    key: str
    scores: tuple[float, ...] | None  # per model: probability of its positive class; None = could not be read
    error: str | None = None
    image: np.ndarray | None = None  # (S, S, 3) float32 in [0, 255]: what the models saw, when asked for
    boxes: tuple[Box | None, ...] = ()  # per model: the tile that gave its score; None (or absent) = the whole
    whole_scores: tuple[float, ...] = ()  # per model: the whole picture's own score (= score unless a tile decided)
    tile_scores: tuple[float, ...] = ()  # per model: the best tile's (softened) score; empty when no tile was scored
    tiles: int = 0  # how many tiles were scored
    # internal: the picture as `preprocess.prepare` made it (decoded once more at the tiles' resolution)
    data_for_tiles: bytes | None = field(default=None, repr=False, compare=False)

    @property
    def score(self) -> float | None:
        """The first model's score."""
        return self.scores[0] if self.scores else None

    @property
    def box(self) -> Box | None:
        return self.boxes[0] if self.boxes else None

    @property
    def whole_score(self) -> float | None:
        return self.whole_scores[0] if self.whole_scores else None

    @property
    def tile_score(self) -> float | None:
        return self.tile_scores[0] if self.tile_scores else None


def box_text(box: Box | None) -> str | None:
    """A tile box for journals, reports and the Prefect artifact: "x0,y0,x1,y1" in fractions, or None."""
    return None if box is None else ",".join(f"{value:.3f}" for value in box)


class Scorer:
    """A trained model's score function, compiled once: (B, S, S, 3) float32 -> (B,) positive-class probability,
    temperature-scaled as the model's metadata says (calibrated scores: see `train.calibrate_temperature`).

    Traced on creation for any batch size (a retrace costs ~1.3 s on a 2-core CPU, as long as
    sorting 70 pictures; the last, smaller batch of a run would otherwise pay it again).
    """

    def __init__(self, trained: TrainedModel):
        self.trained = trained
        self.image_size = trained.image_size
        network, positive, size = trained.network, trained.positive_index, trained.image_size
        temperature = trained.metadata.temperature

        @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32)])
        def score(images: tf.Tensor) -> tf.Tensor:
            probabilities = tf.cast(network(images, training=False), tf.float32)  # (B, 2)
            if temperature == 1.0:
                return probabilities[:, positive]
            logits = tf.math.log(tf.maximum(probabilities, 1e-7))  # log-odds = difference of these
            return tf.sigmoid((logits[:, positive] - logits[:, 1 - positive]) / temperature)

        score(tf.zeros([1, size, size, 3]))  # trace now, at start-up
        self._score = score

    def __call__(self, images: tf.Tensor) -> tf.Tensor:
        return self._score(images)

    def score_one(self, key: str, data: bytes, max_pixels: int, with_image: bool = False) -> Scored:
        """One picture the slow way (Pillow, then a batch of one): for what TF could not decode."""
        try:
            fallback = pillow_fallback(data, key, self.image_size, max_pixels)
        except BadPicture as error:
            return Scored(key, None, str(error))
        image = decode_for_model(tf.constant(fallback), self.image_size)
        scores = tuple(float(score) for score in np.reshape(self(image[tf.newaxis]), [-1]))
        return Scored(key, scores, image=image.numpy() if with_image else None, whole_scores=scores)


class Panel:
    """Several models scored on one input: (B, S, S, 3) at the largest model's size -> (B, M) scores, one
    column per model. A model with a smaller input gets the batch resized once per size (as
    `preprocess.resize_for_model` would squash the picture), so every model sees the same decode.

        panel = Panel([Scorer(load_trained(a)), Scorer(load_trained(b))])
        for result in score_stream(panel, items, decisive=[0.95, 0.9]):
            result.scores   # (a's, b's)
    """

    def __init__(self, scorers: list[Scorer]):
        if not scorers:
            raise ValueError("a panel needs at least one model")
        self.scorers = list(scorers)
        self.image_size = max(scorer.image_size for scorer in self.scorers)

    def __len__(self) -> int:
        return len(self.scorers)

    def __call__(self, images: tf.Tensor, wanted: np.ndarray | None = None) -> np.ndarray:
        """(B, M) scores; with `wanted` (B, M) bool, each model scores only its own rows (NaN elsewhere)."""
        by_size = {self.image_size: images}
        columns = []
        for column, scorer in enumerate(self.scorers):
            rows = None if wanted is None or wanted[:, column].all() else np.flatnonzero(wanted[:, column])
            if rows is not None and not len(rows):
                columns.append(np.full(len(wanted), np.nan))
                continue
            if scorer.image_size not in by_size:
                by_size[scorer.image_size] = tf.image.resize(images, [scorer.image_size] * 2, antialias=True)
            batch = by_size[scorer.image_size]
            scores = np.asarray(scorer(batch if rows is None else tf.gather(batch, rows)), np.float64).reshape(-1)
            if rows is not None:
                scores, own = np.full(len(wanted), np.nan), scores
                scores[rows] = own
            columns.append(scores)
        return np.stack(columns, axis=1)

    score_one = Scorer.score_one  # the slow way for one picture, at the panel's size, through every model


def as_panel(scorer: Scorer | Panel) -> Panel:
    return scorer if isinstance(scorer, Panel) else Panel([scorer])


def score_stream(scorer: Scorer | Panel, items: Iterable[tuple[str, bytes | Exception]], batch_size: int = 64,
                 max_pixels: int = MAX_IMAGE_PIXELS, with_images: bool = False,
                 tiling: TilingParams | None = None, decisive: float | Sequence[float] = 1.0,
                 stop: Callable[[], bool] = lambda: False) -> Iterator[Scored]:
    """Score every (key, bytes) item, in batches; yields one `Scored` per item, errors included.

    An item whose bytes are an Exception (it could not be read) comes out with that error. Results
    come in `items`' order for pictures scored whole (refused ones included: they travel through the
    stream as placeholders, so a run of refused pictures holds no more memory than a batch), tiled ones
    once their tiles are scored (in groups of `batch_size` pictures). Memory is bounded by the pipeline's
    depth, not by the number of items. With `with_images`, each result carries the decoded model input
    (for thumbnails: no second decode).

    Args:
        scorer: one model, or a `Panel` of several scored from one decode.
        tiling: multi-scale settings (None or mode off: whole pictures only).
        decisive: the decision threshold (one per model of a panel); in auto mode a picture goes on to its
            tiles while some model's whole score is below its threshold.
        stop: true once the caller is stopping: pictures still waiting for their tiles are given up.
    """
    panel = as_panel(scorer)
    decisive = tuple(decisive) if isinstance(decisive, Sequence) else (decisive,) * len(panel)
    if len(decisive) != len(panel):
        raise ValueError(f"{len(decisive)} thresholds for {len(panel)} models")
    tiles = _Tiler(panel, tiling, decisive, batch_size, max_pixels) if tiling and tiling.mode != "off" else None
    for scored in _score_whole(panel, items, batch_size, max_pixels, with_images):
        if tiles is None or scored.scores is None or stop() or not any(
                tiling.needs_tiles(score, threshold) for score, threshold in zip(scored.scores, decisive)):
            yield dataclasses.replace(scored, data_for_tiles=None)
        else:
            yield from tiles.add(scored)
    if tiles is not None and not stop():
        yield from tiles.flush()


class _Tiler:
    """Collects pictures that need their tiles scored and scores them in groups, through one tf.data stream
    per scale: decode each at the resolution its tiles need, cut and resize the tiles in parallel, batch them.
    With `tiling.refine_from`, a finer scale's tiles are scored only where they overlap a warm tile of the
    scale before (`finer_tiles`)."""

    def __init__(self, scorer: Panel, tiling: TilingParams, decisive: tuple[float, ...], batch_size: int,
                 max_pixels: int):
        self.scorer, self.tiling, self.batch_size, self.max_pixels = scorer, tiling, batch_size, max_pixels
        self.decisive = decisive
        self.pending: list[tuple[Scored, bytes, list]] = []

    def add(self, scored: Scored) -> Iterator[Scored]:
        prepared = scored.data_for_tiles
        try:
            grids = tile_grid_by_scale(*picture_size(prepared), self.tiling)
        except (BadPicture, OSError) as error:  # it scored whole: keep that score, say why no tiles
            logger.warning("%s: no tiles (%s); scored as a whole", scored.key, error)
            grids = []
        if not grids:  # too small for the finer scales
            yield dataclasses.replace(scored, data_for_tiles=None)
            return
        if self.tiling.refine_from is None:  # every scale at once: one pass
            grids = [[box for grid in grids for box in grid]]
        self.pending.append((scored, prepared, [np.asarray(grid, np.float32) for grid in grids]))
        if len(self.pending) >= self.batch_size:
            yield from self.flush()

    def flush(self) -> Iterator[Scored]:
        pending, self.pending = self.pending, []
        if not pending:
            return
        models = len(self.scorer)
        datas = [prepared for _, prepared, _ in pending]
        boxes = [grids[0] for _, _, grids in pending]  # (n, 4) per picture: the tiles of the scale just scored
        # (n, models) per picture: their softened scores, NaN where a model does not score that tile
        scores = self.score_tiles(datas, boxes)
        all_boxes, all_scores = list(boxes), list(scores)
        for level in range(1, max(len(grids) for _, _, grids in pending)):
            chosen = [finer_tiles(grids[level], boxes[index], scores[index], self.tiling.refine_from)
                      if level < len(grids) and len(scores[index]) else (_NO_BOXES, np.zeros((0, models), bool))
                      for index, (_, _, grids) in enumerate(pending)]
            boxes = [picture_boxes for picture_boxes, _ in chosen]
            scores = self.score_tiles(datas, boxes, [wanted for _, wanted in chosen])
            all_boxes = [np.concatenate(pair) for pair in zip(all_boxes, boxes)]
            all_scores = [np.concatenate(pair) for pair in zip(all_scores, scores)]
        for (scored, _, _), tile_boxes, tile_scores in zip(pending, all_boxes, all_scores):
            if not len(tile_scores):  # TF could not decode it at the tiles' resolution: its whole score stands
                logger.warning("%s: its tiles could not be decoded; scored as a whole", scored.key)
                yield dataclasses.replace(scored, data_for_tiles=None)
                continue
            # (models,): each model's best among its own tiles (every model scores every coarsest tile)
            best = np.argmax(np.where(np.isnan(tile_scores), -np.inf, tile_scores), axis=0)
            best_scores = tuple(float(tile_scores[row, model]) for model, row in enumerate(best))
            decides = [tile >= threshold and tile > whole
                       for tile, threshold, whole in zip(best_scores, self.decisive, scored.scores)]
            yield dataclasses.replace(
                scored, tiles=len(tile_scores), tile_scores=best_scores, data_for_tiles=None,
                scores=tuple(tile if decided else whole for tile, decided, whole in
                             zip(best_scores, decides, scored.scores)),
                boxes=tuple(tuple(round(float(v), 4) for v in tile_boxes[row]) if decided else None
                            for row, decided in zip(best, decides)))

    def score_tiles(self, datas: list[bytes], boxes: list[np.ndarray],
                    wanted: list[np.ndarray] | None = None) -> list[np.ndarray]:
        """Each picture's tiles `boxes[i]` (n_i, 4) scored and softened: (n_i, models) each; a picture TF cannot
        decode at the tiles' resolution gets none. With `wanted` ((n_i, models) bool each), a model scores only
        the tiles it wants (NaN elsewhere): what it would score in a sort of its own. Else every model scores
        every tile."""
        size, finest, models = self.scorer.image_size, min(self.tiling.scales), len(self.scorer)
        if wanted is None:
            wanted = [np.ones((len(picture_boxes), models), bool) for picture_boxes in boxes]

        def generate():
            for index, (data, picture_boxes, picture_wanted) in enumerate(zip(datas, boxes, wanted)):
                if len(picture_boxes):
                    yield index, data, picture_boxes, picture_wanted

        dataset = tf.data.Dataset.from_generator(generate, output_signature=(
            tf.TensorSpec([], tf.int64), tf.TensorSpec([], tf.string), tf.TensorSpec([None, 4], tf.float32),
            tf.TensorSpec([None, models], tf.bool)))
        # Every scale is cut from one decode resolution (the finest scale's), so a tile scores the same
        # whichever tiles are scored beside it.
        dataset = dataset.map(lambda index, data, picture_boxes, picture_wanted: (
            tf.fill([tf.shape(picture_boxes)[0]], index), tiles_for_model(data, picture_boxes, size, finest),
            picture_wanted), num_parallel_calls=AUTOTUNE, deterministic=True)
        dataset = dataset.ignore_errors().unbatch().batch(self.batch_size).prefetch(2)
        rows: dict[int, list[np.ndarray]] = collections.defaultdict(list)
        for indices, images, batch_wanted in dataset:
            scores = self.scorer(images, batch_wanted.numpy())  # (T, models)
            if self.tiling.tile_temperature != 1.0:
                scores = temper(scores, self.tiling.tile_temperature)
            for index, row in zip(indices.numpy().tolist(), scores):
                rows[index].append(row)
        return [np.asarray(rows[index], np.float64).reshape(-1, models) if index in rows else
                np.zeros((0, models)) for index in range(len(datas))]


_NO_BOXES = np.zeros((0, 4), np.float32)


def finer_tiles(finer: np.ndarray, coarser: np.ndarray, coarser_scores: np.ndarray,
                refine_from: float | None) -> tuple[np.ndarray, np.ndarray]:
    """The tiles of a finer scale worth scoring, for each model apart: all of them (`refine_from` None), or
    those overlapping a coarser tile that this model scored at `refine_from` or more (softened). So a model
    scores the same tiles with other models beside it as alone, and decides alike.

    Args:
        finer: (n, 4) boxes of the finer scale; coarser: (m, 4) boxes scored; coarser_scores: (m, models),
            NaN where a model did not score that tile.
    Returns:
        (k, 4) boxes that some model wants, in `finer`'s order, and (k, models) bool: which models want each.
    """
    models = coarser_scores.shape[1]
    if refine_from is None:
        return finer, np.ones((len(finer), models), bool)
    warm = coarser_scores >= refine_from  # (m, models); NaN is never warm
    overlap = ((finer[:, None, 0] < coarser[None, :, 2]) & (coarser[None, :, 0] < finer[:, None, 2]) &
               (finer[:, None, 1] < coarser[None, :, 3]) & (coarser[None, :, 1] < finer[:, None, 3]))  # (n, m)
    wanted = (overlap[:, :, None] & warm[None, :, :]).any(axis=1)  # (n, models)
    keep = wanted.any(axis=1)
    return finer[keep], wanted[keep]


def scoring_dataset(read: Callable[[], Iterator[tuple[int, bytes, bool]]], image_size: int,
                    batch_size: int) -> tf.data.Dataset:
    """The sort's and the evaluation's input pipeline, built in one place (bench/ measures this same one).

    Args:
        read: yields (sequence number, `preprocess.prepare`d bytes, usable); an unusable item is a placeholder
            that travels in its turn as a blank picture.
    Returns:
        batches of (sequence numbers (B,), model inputs (B, S, S, 3) float32); a picture TF fails to decode is
        dropped (its sequence number is missing: the caller retries it another way).
    """
    blank = tf.zeros([image_size, image_size, 3])
    dataset = tf.data.Dataset.from_generator(read, output_signature=(
        tf.TensorSpec([], tf.int64), tf.TensorSpec([], tf.string), tf.TensorSpec([], tf.bool)))
    dataset = dataset.map(lambda sequence, data, usable: (sequence, tf.cond(
        usable, lambda: decode_for_model(data, image_size), lambda: blank)), num_parallel_calls=AUTOTUNE,
        deterministic=True)
    dataset = dataset.ignore_errors()  # a failed decode drops the element; the caller notices the gap
    return dataset.batch(batch_size).prefetch(2)


def _score_whole(scorer: Panel, items: Iterable[tuple[str, bytes | Exception]], batch_size: int,
                 max_pixels: int, with_images: bool) -> Iterator[Scored]:
    """The whole pictures, squashed to the model input (see `score_stream`). Each result carries its prepared
    bytes (`data_for_tiles`) for the tiler, so no picture is prepared twice; `score_stream` drops them."""
    image_size = scorer.image_size
    # (sequence, key, raw bytes, prepared bytes, why refused); a refused picture keeps neither kind of bytes
    in_flight: collections.deque[tuple[int, str, bytes | None, bytes | None, str | None]] = collections.deque()

    def read() -> Iterator[tuple[int, bytes, bool]]:
        for sequence, (key, data) in enumerate(items):
            if isinstance(data, Exception):
                in_flight.append((sequence, key, None, None, str(data)))
                yield sequence, b"", False  # a placeholder: the refusal comes out in its turn
                continue
            try:
                prepared = prepare(data, key, image_size, max_pixels)
            except BadPicture as error:
                in_flight.append((sequence, key, None, None, str(error)))
                yield sequence, b"", False
                continue
            in_flight.append((sequence, key, data, prepared, None))
            yield sequence, prepared, True

    for sequences, images in scoring_dataset(read, image_size, batch_size):
        scores = scorer(images)  # (B, models)
        seen = images.numpy() if with_images else [None] * len(scores)  # rows are views: no copy each
        for sequence, row, image in zip(sequences.numpy().tolist(), scores.tolist(), seen):
            while in_flight[0][0] != sequence:  # TF dropped these: retry them with Pillow
                yield _fallback(scorer, *in_flight.popleft()[1:4], max_pixels, with_images)
            _, key, _, prepared, refused = in_flight.popleft()
            if refused:
                yield Scored(key, None, refused)
            else:
                row = tuple(row)
                yield Scored(key, row, image=image, whole_scores=row, data_for_tiles=prepared)
    while in_flight:
        _, key, data, prepared, refused = in_flight.popleft()
        yield Scored(key, None, refused) if refused else _fallback(scorer, key, data, prepared, max_pixels,
                                                                   with_images)


def _fallback(scorer: Panel, key: str, data: bytes, prepared: bytes, max_pixels: int, with_images: bool) -> Scored:
    scored = scorer.score_one(key, data, max_pixels, with_images)
    return dataclasses.replace(scored, data_for_tiles=prepared if scored.scores is not None else None)


def read_files(paths: Iterable, root=None) -> Iterator[tuple[str, bytes | BadPicture]]:
    """(key, bytes) for files; key is the path relative to root when given; (key, BadPicture) if unreadable."""
    for path in paths:
        path = Path(path)
        key = path.relative_to(root).as_posix() if root else str(path)
        try:
            yield key, path.read_bytes()
        except OSError as error:
            yield key, BadPicture(f"unreadable: {error.strerror or error}")
