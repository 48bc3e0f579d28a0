"""From a picture's bytes to the model's input: the one definition every path uses.

    shard_bytes = encode_square(load_picture(data, name, limit).image, 144, "JPEG", quality=92)  # shards
    image = resize_for_model(tf.io.decode_jpeg(shard_bytes), 128)        # training (no augment) and validation
    image = decode_for_model(prepare(data, name, 128, limit), 128)       # evaluate and sort
    boxes = tile_grid(width, height, TilingParams())                      # multi-scale: where to look closer
    tiles = tiles_for_model(prepare(...), boxes, 128, finest=0.5)         # (n, 128, 128, 3), aspect kept

The model sees a picture squashed whole to S x S (the paper's resize, aspect not kept),
float32 in [0, 255], antialiased. Shards store it at a margin above S (for random crops)
as JPEG; evaluate and sort decode the original bytes with TF (JPEGs at a reduced DCT
scale when much larger than S) and fall back to Pillow for what TF cannot decode
faithfully. `tests/test_preprocess.py` feeds one picture through every path and compares.

Tiles (`tile_grid`, `tiles_for_model`) are squares cut from the picture at its own aspect
and resized to S x S the same way: a figure a tenth of the picture's height is a fifth of a
half-height tile, twice as many pixels as in the squashed whole.
"""

from __future__ import annotations

import io
import math
from typing import Callable

import tensorflow as tf
from PIL import Image

from mona_pipeline.config import TilingParams
from mona_pipeline.images import load_picture, open_header

TF_FORMATS = {"JPEG", "PNG", "GIF", "BMP", "WEBP"}
TF_MODES = {"RGB", "RGBA", "L", "LA", "P", "1"}
EXIF_ORIENTATION = 0x0112
# Pillow's fallback keeps the aspect and at most this many times the model input on the short side (enough
# for tiles of a quarter of it); TF then antialiases down to S.
FALLBACK_MARGIN = 4


# ---------------------------------------------------------------- Pillow: shards and the fallback


def squash(image: Image.Image, side: int) -> Image.Image:
    """An RGB picture resized to side x side, aspect not kept (the paper's resize)."""
    return image.resize((side, side), Image.BILINEAR, reducing_gap=2.0)


def encode_square(image: Image.Image, side: int, image_format: str, **options) -> bytes:
    """Squash to side x side and encode (JPEG for shards, BMP for the fallback path)."""
    buffer = io.BytesIO()
    squash(image, side).save(buffer, image_format, **options)
    return buffer.getvalue()


def pillow_fallback(data: bytes, name: str, image_size: int, max_pixels: int) -> bytes:
    """Decode with Pillow (every accepted format and mode, EXIF applied), shrink (aspect kept, short side at
    most FALLBACK_MARGIN x image_size), return BMP bytes TF reads.

    Raises:
        BadPicture: the picture cannot be read (the message says why).
    """
    image = load_picture(data, name, max_pixels).image
    scale = FALLBACK_MARGIN * image_size / min(image.size)
    if scale < 1.0:
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                             Image.BILINEAR, reducing_gap=2.0)
    buffer = io.BytesIO()
    image.save(buffer, "BMP")
    return buffer.getvalue()


def picture_size(prepared: bytes) -> tuple[int, int]:
    """(width, height) of `prepare`d bytes, from the header alone."""
    with Image.open(io.BytesIO(prepared)) as header:
        return header.size


def tile_grid(width: int, height: int, tiling: TilingParams) -> list[tuple[float, float, float, float]]:
    """Overlapping square tiles covering the picture at each of `tiling.scales`, as (x0, y0, x1, y1) fractions
    of its width and height, coarsest scale first (`tile_grid_by_scale`, one list after another).

    At scale 0.5 with overlap 0.25 a 1920 x 1080 wallpaper has 3 x 5 tiles of 540 pixels, a 1080 x 2400
    phone screenshot 3 x 7.
    """
    return [box for boxes in tile_grid_by_scale(width, height, tiling) for box in boxes]


def tile_grid_by_scale(width: int, height: int,
                       tiling: TilingParams) -> list[list[tuple[float, float, float, float]]]:
    """`tile_grid`'s tiles, one list per scale that fits, coarsest first; a scale whose tiles would be under
    `tiling.min_tile_side` pixels is left out (and so is every finer one)."""
    grids = []
    for scale in tiling.scales:
        side = scale * min(width, height)
        if side < tiling.min_tile_side:
            continue
        step = side * (1.0 - tiling.overlap)
        starts = []
        for length in (width, height):
            count = 1 if length <= side else math.ceil((length - side) / step - 1e-9) + 1
            starts.append([(length - side) * i / max(1, count - 1) for i in range(count)])
        grids.append([(x / width, y / height, (x + side) / width, (y + side) / height)
                      for y in starts[1] for x in starts[0]])
    return grids


def prepare(data: bytes, name: str, image_size: int, max_pixels: int) -> bytes:
    """Check a picture's header and route it: its own bytes for TF, or a Pillow-made BMP.

    Raises:
        BadPicture: zero-byte, not a picture, or too large.
    """
    header = open_header(data, max_pixels)
    rotated = header.getexif().get(EXIF_ORIENTATION, 1) != 1  # JPEG, PNG (eXIf), WebP and TIFF carry it
    if header.format in TF_FORMATS and header.mode in TF_MODES and not rotated:
        return data
    return pillow_fallback(data, name, image_size, max_pixels)


# ---------------------------------------------------------------- TF: the model input


def resize_for_model(image: tf.Tensor, image_size: int) -> tf.Tensor:
    """(H, W, 3) uint8 or float -> (image_size, image_size, 3) float32 in [0, 255], squashed, antialiased."""
    return tf.image.resize(image, [image_size, image_size], antialias=True)


def _decode_jpeg_scaled(data: tf.Tensor, keep_short_side: tf.Tensor) -> tf.Tensor:
    """Decode a JPEG at 1/1, 1/2, 1/4 or 1/8 scale: the smallest that keeps `keep_short_side` pixels."""
    shape = tf.io.extract_jpeg_shape(data)
    short_side = tf.cast(tf.minimum(shape[0], shape[1]), tf.float32)

    def decode(ratio: int) -> Callable[[], tf.Tensor]:
        return lambda: tf.io.decode_jpeg(data, channels=3, ratio=ratio, dct_method="INTEGER_FAST")

    branches = [(short_side >= keep_short_side * ratio, decode(ratio)) for ratio in (8, 4, 2)]
    return tf.case(branches, default=decode(1), exclusive=False)


def decode_for_model(data: tf.Tensor, image_size: int) -> tf.Tensor:
    """Encoded bytes (from `prepare`) -> (image_size, image_size, 3) float32 in [0, 255]."""
    return resize_for_model(decode_picture(data, 1.5 * image_size), image_size)


def tiles_for_model(data: tf.Tensor, boxes: tf.Tensor, image_size: int, finest: float) -> tf.Tensor:
    """Encoded bytes (from `prepare`) and (n, 4) tile boxes from `tile_grid` -> (n, S, S, 3) float32 in
    [0, 255], each tile resized like the whole picture (`resize_for_model`). `finest`: the smallest scale,
    so a JPEG is decoded at the reduced DCT scale that still keeps S pixels on its smallest tile."""
    image = decode_picture(data, tf.constant(image_size / finest, tf.float32))
    size = tf.cast(tf.shape(image)[:2], tf.float32)  # (height, width)

    def tile(box: tf.Tensor) -> tf.Tensor:
        top, left = tf.cast(box[1] * size[0], tf.int32), tf.cast(box[0] * size[1], tf.int32)
        bottom = tf.maximum(top + 1, tf.cast(tf.round(box[3] * size[0]), tf.int32))
        right = tf.maximum(left + 1, tf.cast(tf.round(box[2] * size[1]), tf.int32))
        return resize_for_model(image[top:bottom, left:right], image_size)

    return tf.map_fn(tile, boxes, fn_output_signature=tf.TensorSpec([image_size, image_size, 3], tf.float32))


def decode_picture(data: tf.Tensor, keep_short_side: float | tf.Tensor) -> tf.Tensor:
    """Encoded bytes (from `prepare`) -> (H, W, 3) uint8; JPEGs at the smallest DCT scale that keeps
    `keep_short_side` pixels on the short side (or whole)."""
    keep_short_side = tf.cast(keep_short_side, tf.float32)
    magic = tf.strings.substr(data, 0, 4)
    is_jpeg = tf.strings.substr(magic, 0, 3) == b"\xff\xd8\xff"
    is_webp = tf.logical_and(magic == b"RIFF", tf.strings.substr(data, 8, 4) == b"WEBP")

    def webp() -> tf.Tensor:
        import tensorflow_io as tfio

        return tfio.image.decode_webp(data)[..., :3]

    def other() -> tf.Tensor:
        return tf.io.decode_image(data, channels=3, expand_animations=False)

    image = tf.case([(is_jpeg, lambda: _decode_jpeg_scaled(data, keep_short_side)), (is_webp, webp)],
                    default=other)
    image.set_shape([None, None, 3])
    return image


def augment(image: tf.Tensor, image_size: int, seed: tf.Tensor, strong: bool = False) -> tf.Tensor:
    """Training only: random crop (from the shard margin), flip, brightness and contrast; `strong` adds what
    pictures people keep do that training pictures may not: zoom in to part of the picture and out (a
    smaller figure), part of it covered, a colour cast of the light, blur and JPEG noise. Hue is never
    rotated: hair and outfit colours are what tells characters apart; a cast keeps their relations.

    Args:
        image: (S, S, 3) uint8, S >= image_size.
        seed: shape (2,) int, for stateless (reproducible) randomness.
    Returns:
        (image_size, image_size, 3) float32 in [0, 255].
    """
    seeds = tf.random.experimental.stateless_split(seed, num=6)
    side = tf.shape(image)[0]
    # Crop a random square between image_size and the whole picture, then resize: scale + shift.
    crop = tf.random.stateless_uniform([], seeds[0], minval=image_size, maxval=side + 1, dtype=tf.int32)
    image = tf.image.stateless_random_crop(image, [crop, crop, 3], seeds[1])
    # At most a 1.125x downscale (the shard margin): bilinear needs no antialiasing filter here.
    image = tf.image.resize(image, [image_size, image_size])
    image = tf.image.stateless_random_flip_left_right(image, seeds[2])
    image = tf.image.stateless_random_brightness(image, 0.15 * 255.0, seeds[3])
    image = tf.image.stateless_random_contrast(image, 0.8, 1.2, seeds[4])
    if strong:
        image = _strong_augment(image, image_size, seeds[5])
    return tf.clip_by_value(image, 0.0, 255.0)


def _uniform(seed: tf.Tensor, low: float = 0.0, high: float = 1.0, shape=()) -> tf.Tensor:
    return tf.random.stateless_uniform(shape, seed, minval=low, maxval=high)


def _zoom(image: tf.Tensor, size: int, seeds: tf.Tensor) -> tf.Tensor:
    """A quarter of the time zoom in (a crop of 70-100% of the side: the figure is rarely lost), a quarter
    zoom out (the picture at 50-100% on its mean colour: a smaller figure)."""
    roll = _uniform(seeds[2])
    scale = tf.where(roll < 0.25, _uniform(seeds[0], 0.7, 1.0), _uniform(seeds[0], 0.5, 1.0))
    zoomed_side = tf.cast(tf.round(scale * size), tf.int32)
    offsets = tf.cast(_uniform(seeds[1], shape=[2]) * tf.cast(size - zoomed_side, tf.float32), tf.int32)

    def zoom_in() -> tf.Tensor:
        part = tf.image.crop_to_bounding_box(image, offsets[0], offsets[1], zoomed_side, zoomed_side)
        return tf.image.resize(part, [size, size])

    def zoom_out() -> tf.Tensor:
        small = tf.image.resize(image, [zoomed_side, zoomed_side], antialias=True)
        ground = tf.reduce_mean(image, axis=[0, 1])  # (3,): the picture's mean colour
        placed = tf.image.pad_to_bounding_box(small - ground, offsets[0], offsets[1], size, size)
        return placed + ground

    return tf.cond(roll < 0.25, zoom_in, lambda: tf.cond(roll < 0.5, zoom_out, lambda: image))


def _erase(image: tf.Tensor, size: int, seeds: tf.Tensor) -> tf.Tensor:
    """Random erasing: half the time a box of 5-20% of the picture becomes one random colour."""
    area = _uniform(seeds[0], 0.05, 0.2) * size * size
    aspect = tf.exp(_uniform(seeds[1], -0.8, 0.8))
    height = tf.minimum(tf.sqrt(area * aspect), size - 1.0)
    width = tf.minimum(tf.sqrt(area / aspect), size - 1.0)
    corner = _uniform(seeds[2], shape=[2]) * (size - tf.stack([height, width]))
    rows = tf.range(size, dtype=tf.float32)[:, None]
    columns = tf.range(size, dtype=tf.float32)[None, :]
    inside = ((rows >= corner[0]) & (rows < corner[0] + height) & (columns >= corner[1])
              & (columns < corner[1] + width))[..., None]  # (S, S, 1)
    colour = _uniform(seeds[3], 0.0, 255.0, shape=[3])
    return tf.where(inside & (_uniform(seeds[4]) < 0.5), colour, image)


def _strong_augment(image: tf.Tensor, size: int, seed: tf.Tensor) -> tf.Tensor:
    seeds = tf.random.experimental.stateless_split(seed, num=16)
    image = _zoom(image, size, seeds[0:3])
    image = _erase(image, size, seeds[3:8])
    # A colour cast of the light: each channel scaled by 0.85-1.15, the same for every pixel.
    cast = _uniform(seeds[8], 0.85, 1.15, shape=[3])
    image = tf.where(_uniform(seeds[9]) < 0.5, image * cast, image)
    # Blur (a 3x3 box, a fifth of the time) and JPEG noise (quality 40-95, a third of the time).
    blurred = tf.nn.avg_pool2d(image[tf.newaxis], 3, 1, "SAME")[0]
    image = tf.where(_uniform(seeds[10]) < 0.2, blurred, image)
    noisy = tf.image.stateless_random_jpeg_quality(tf.clip_by_value(image, 0.0, 255.0) / 255.0, 40, 95,
                                                   seeds[11]) * 255.0
    noisy.set_shape(image.shape)
    return tf.where(_uniform(seeds[12]) < 0.33, noisy, image)
