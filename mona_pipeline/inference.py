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
"""

from __future__ import annotations

import collections
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import tensorflow as tf

from mona_pipeline.config import MAX_IMAGE_PIXELS
from mona_pipeline.images import BadPicture
from mona_pipeline.models import TrainedModel
from mona_pipeline.preprocess import decode_for_model, pillow_fallback, prepare

logger = logging.getLogger(__name__)

AUTOTUNE = tf.data.AUTOTUNE


@dataclass(frozen=True)
class Scored:
    key: str
    score: float | None  # probability of the positive class; None when the picture could not be read
    error: str | None = None
    image: np.ndarray | None = None  # (S, S, 3) float32 in [0, 255]: what the model saw, when asked for


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
        return Scored(key, float(self(image[tf.newaxis])[0]), image=image.numpy() if with_image else None)


def score_stream(scorer: Scorer, items: Iterable[tuple[str, bytes | Exception]], batch_size: int = 64,
                 max_pixels: int = MAX_IMAGE_PIXELS, with_images: bool = False) -> Iterator[Scored]:
    """Score every (key, bytes) item, in batches; yields one `Scored` per item, errors included.

    An item whose bytes are an Exception (it could not be read) comes out with that error. Order
    follows `items` for the pictures that decode; refused ones come out as soon as they are seen.
    Memory is bounded by the pipeline's depth, not by the number of items. With `with_images`,
    each result carries the decoded model input (for thumbnails: no second decode).
    """
    image_size = scorer.image_size
    refused: collections.deque[Scored] = collections.deque()  # filled by the reader thread
    in_flight: collections.deque[tuple[int, str, bytes]] = collections.deque()

    def read() -> Iterator[tuple[int, bytes]]:
        for sequence, (key, data) in enumerate(items):
            if isinstance(data, Exception):
                refused.append(Scored(key, None, str(data)))
                continue
            try:
                prepared = prepare(data, key, image_size, max_pixels)
            except BadPicture as error:
                refused.append(Scored(key, None, str(error)))
                continue
            in_flight.append((sequence, key, data))
            yield sequence, prepared

    dataset = tf.data.Dataset.from_generator(
        read, output_signature=(tf.TensorSpec([], tf.int64), tf.TensorSpec([], tf.string)))
    dataset = dataset.map(lambda sequence, data: (sequence, decode_for_model(data, image_size)),
                          num_parallel_calls=AUTOTUNE, deterministic=True)
    dataset = dataset.ignore_errors()  # a failed decode drops the element; we notice the gap below
    dataset = dataset.batch(batch_size).prefetch(2)
    for sequences, images in dataset:
        scores = scorer(images).numpy()
        seen = images.numpy() if with_images else [None] * len(scores)  # rows are views: no copy each
        while refused:
            yield refused.popleft()
        for sequence, score, image in zip(sequences.numpy().tolist(), scores.tolist(), seen):
            while in_flight[0][0] != sequence:  # TF dropped these: retry them with Pillow
                _, key, data = in_flight.popleft()
                yield scorer.score_one(key, data, max_pixels, with_images)
            _, key, _ = in_flight.popleft()
            yield Scored(key, score, image=image)
    while refused:
        yield refused.popleft()
    while in_flight:
        _, key, data = in_flight.popleft()
        yield scorer.score_one(key, data, max_pixels, with_images)


def read_files(paths: Iterable, root=None) -> Iterator[tuple[str, bytes | BadPicture]]:
    """(key, bytes) for files; key is the path relative to root when given; (key, BadPicture) if unreadable."""
    for path in paths:
        path = Path(path)
        key = path.relative_to(root).as_posix() if root else str(path)
        try:
            yield key, path.read_bytes()
        except OSError as error:
            yield key, BadPicture(f"unreadable: {error.strerror or error}")
