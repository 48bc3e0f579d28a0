"""Scoring pictures with a trained model, streaming: shared by `evaluate` and `sort`, so both decide alike.

    for result in score_stream(model, items, image_size=128, positive_index=0):
        result.key, result.score, result.error

`items` yields (key, bytes). Python sniffs each header (cheap): zero-byte,
non-pictures and decompression bombs are refused there; formats and modes TF
cannot decode faithfully (TIFF, CMYK, 16-bit, EXIF-rotated) are decoded by
Pillow into a small BMP. Everything else is decoded by TF in parallel, JPEGs
at a reduced scale (`ratio`) when they are much larger than the model input,
WebP through tensorflow-io. A picture TF fails on is retried with Pillow, and
if that fails too it comes out with its error; the stream goes on.
"""

from __future__ import annotations

import collections
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import tensorflow as tf
from PIL import Image, UnidentifiedImageError

from mona_pipeline.images import BadPicture, load_picture, sniff_format

logger = logging.getLogger(__name__)

AUTOTUNE = tf.data.AUTOTUNE
TF_FORMATS = {"JPEG", "PNG", "GIF", "BMP", "WEBP"}
TF_MODES = {"RGB", "RGBA", "L", "LA", "P", "1"}
EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class Scored:
    key: str
    score: float | None  # probability of the positive class; None when the picture could not be read
    error: str | None = None
    image: np.ndarray | None = None  # (S, S, 3) float32 in [0, 255]: what the model saw, when asked for


def pillow_thumbnail(data: bytes, name: str, image_size: int, max_pixels: int) -> bytes:
    """Decode with Pillow (any accepted format/mode, EXIF applied), shrink, return BMP bytes TF reads."""
    picture = load_picture(data, name, max_pixels)
    image = picture.image
    if min(image.size) > 2 * image_size:
        image = image.resize((2 * image_size, 2 * image_size), Image.BILINEAR, reducing_gap=2.0)
    buffer = io.BytesIO()
    image.save(buffer, "BMP")
    return buffer.getvalue()


def prepare(data: bytes, name: str, image_size: int, max_pixels: int) -> bytes:
    """Check a picture's header and route it: its own bytes for TF, or a Pillow-made BMP.

    Raises:
        BadPicture: zero-byte, not a picture, or too large.
    """
    if not data:
        raise BadPicture("zero-byte file")
    try:
        header = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        claimed = sniff_format(data)
        raise BadPicture(f"corrupt {claimed}: the header says {claimed} but it cannot be read" if claimed
                         else "not a picture (unrecognised content)") from None
    except Exception as error:  # Pillow raises assorted errors on hostile headers
        raise BadPicture(f"corrupt header: {error}") from None
    width, height = header.size
    if width * height > max_pixels:
        raise BadPicture(f"too large: {width}x{height} = {width * height} pixels > limit {max_pixels}")
    rotated = header.format == "JPEG" and header.getexif().get(EXIF_ORIENTATION, 1) != 1
    if header.format in TF_FORMATS and header.mode in TF_MODES and not rotated:
        return data
    return pillow_thumbnail(data, name, image_size, max_pixels)


def _decode_jpeg_scaled(data: tf.Tensor, image_size: int) -> tf.Tensor:
    """Decode a JPEG at 1/1, 1/2, 1/4 or 1/8 scale: the smallest that keeps 1.5x the model input."""
    shape = tf.io.extract_jpeg_shape(data)
    short_side = tf.minimum(shape[0], shape[1])

    def decode(ratio: int) -> Callable[[], tf.Tensor]:
        return lambda: tf.io.decode_jpeg(data, channels=3, ratio=ratio, dct_method="INTEGER_FAST")

    branches = [(short_side >= int(1.5 * image_size * ratio), decode(ratio)) for ratio in (8, 4, 2)]
    return tf.case(branches, default=decode(1), exclusive=False)


def decode_for_model(data: tf.Tensor, image_size: int) -> tf.Tensor:
    """Encoded bytes -> (image_size, image_size, 3) float32 in [0, 255], squashed like the training data."""
    magic = tf.strings.substr(data, 0, 4)
    is_jpeg = tf.strings.substr(magic, 0, 3) == b"\xff\xd8\xff"
    is_webp = tf.logical_and(magic == b"RIFF", tf.strings.substr(data, 8, 4) == b"WEBP")

    def webp() -> tf.Tensor:
        import tensorflow_io as tfio

        return tfio.image.decode_webp(data)[..., :3]

    def other() -> tf.Tensor:
        return tf.io.decode_image(data, channels=3, expand_animations=False)

    image = tf.case([(is_jpeg, lambda: _decode_jpeg_scaled(data, image_size)), (is_webp, webp)], default=other)
    image.set_shape([None, None, 3])
    return tf.image.resize(image, [image_size, image_size], antialias=True)


def make_score_fn(model, positive_index: int) -> Callable[[tf.Tensor], tf.Tensor]:
    """A compiled function: (B, S, S, 3) float32 -> (B,) float32 probability of the positive class.

    Traced once, on creation, for any batch size (a retrace costs ~1.3 s on a 2-core CPU, as long as
    sorting 70 pictures; the last, smaller batch of a run would otherwise pay it again).
    """
    size = model.input_shape[1]

    @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32)])
    def score(images: tf.Tensor) -> tf.Tensor:
        return tf.cast(model(images, training=False)[:, positive_index], tf.float32)

    score(tf.zeros([1, size, size, 3]))  # trace now, at start-up
    return score


def _score_alone(score_fn, key: str, data: bytes, image_size: int, max_pixels: int, with_images: bool) -> Scored:
    """The slow path for a picture TF could not decode: Pillow, then a batch of one."""
    try:
        thumbnail = pillow_thumbnail(data, key, image_size, max_pixels)
    except BadPicture as error:
        return Scored(key, None, str(error))
    image = decode_for_model(tf.constant(thumbnail), image_size)
    return Scored(key, float(score_fn(image[tf.newaxis])[0]), image=image.numpy() if with_images else None)


def score_stream(model, items: Iterable[tuple[str, bytes]], image_size: int, positive_index: int,
                 batch_size: int = 64, max_pixels: int = 64_000_000, score_fn=None,
                 with_images: bool = False) -> Iterator[Scored]:
    """Score every (key, bytes) item, in batches; yields one `Scored` per item, errors included.

    Order follows `items` for the pictures that decode; refused ones come out as soon as they are seen.
    Memory is bounded by the pipeline's depth, not by the number of items. With `with_images`, each
    result carries the decoded model input (for thumbnails: no second decode).
    """
    score_fn = score_fn or make_score_fn(model, positive_index)
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
        scores = score_fn(images).numpy()
        seen = images.numpy() if with_images else [None] * len(scores)  # rows are views: no copy each
        while refused:
            yield refused.popleft()
        for sequence, score, image in zip(sequences.numpy().tolist(), scores.tolist(), seen):
            while in_flight[0][0] != sequence:  # TF dropped these: retry them with Pillow
                _, key, data = in_flight.popleft()
                yield _score_alone(score_fn, key, data, image_size, max_pixels, with_images)
            _, key, _ = in_flight.popleft()
            yield Scored(key, score, image=image)
    while refused:
        yield refused.popleft()
    while in_flight:
        _, key, data = in_flight.popleft()
        yield _score_alone(score_fn, key, data, image_size, max_pixels, with_images)


def read_files(paths: Iterable, root=None) -> Iterator[tuple[str, bytes | BadPicture]]:
    """(key, bytes) for files; key is the path relative to root when given; (key, BadPicture) if unreadable."""
    for path in paths:
        path = Path(path)
        key = path.relative_to(root).as_posix() if root else str(path)
        try:
            yield key, path.read_bytes()
        except OSError as error:
            yield key, BadPicture(f"unreadable: {error.strerror or error}")
