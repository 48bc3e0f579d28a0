"""One preprocessing for every path: shards and training, evaluate and sort, the Pillow fallback."""

import io
import json

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from mona_pipeline import preprocess
from mona_pipeline.images import BadPicture
from tests.conftest import colour_picture, picture_bytes


def _gradient(size=(1600, 1200)) -> Image.Image:
    x = np.linspace(0, 255, size[0])[None, :, None]
    y = np.linspace(0, 255, size[1])[:, None, None]
    return Image.fromarray(np.concatenate([x + 0 * y, y + 0 * x, (x + y) / 2], axis=2).astype(np.uint8))


def _encoded(image: Image.Image, fmt: str, **save) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "GIF"])
def test_decode_for_model_matches_pillow(fmt):
    image = _gradient()
    data = _encoded(image if fmt != "GIF" else image.convert("P"), fmt)
    decoded = preprocess.decode_for_model(tf.constant(data), 64).numpy()
    assert decoded.shape == (64, 64, 3) and decoded.dtype == np.float32
    reference = np.asarray(Image.open(io.BytesIO(data)).convert("RGB").resize((64, 64), Image.BOX), np.float32)
    assert np.abs(decoded - reference).mean() < 8  # downscaled JPEG decode and antialiased resize stay close


@pytest.mark.parametrize("fmt, size", [("JPEG", (1920, 1080)), ("PNG", (1920, 1080)), ("PNG", (300, 200))])
def test_each_tile_shows_what_its_box_covers(fmt, size):
    """Tiles are cut from a JPEG decoded at a reduced DCT scale, a PNG at full size, a small picture enlarged:
    each must be its box's part of the picture, whatever the decode."""
    from mona_pipeline.config import TilingParams

    picture = _scene(size)
    data = _encoded(picture, fmt, **({"quality": 95} if fmt == "JPEG" else {}))
    grids = preprocess.tile_grid_by_scale(*size, TilingParams(min_tile_side=16))
    assert len(grids) == 2
    for grid in grids:
        tiles = preprocess.tiles_for_model(tf.constant(data), tf.constant(grid, tf.float32), 64,
                                           min(TilingParams().scales)).numpy()
        assert tiles.shape == (len(grid), 64, 64, 3)
        for tile, (x0, y0, x1, y1) in zip(tiles, grid):
            box = (round(x0 * size[0]), round(y0 * size[1]), round(x1 * size[0]), round(y1 * size[1]))
            reference = np.asarray(picture.crop(box).resize((64, 64), Image.BOX), np.float32)
            assert np.abs(tile - reference).mean() < 8, (box, np.abs(tile - reference).mean())
    shifted = preprocess.tiles_for_model(tf.constant(data), tf.constant(grids[0][1:2], tf.float32), 64, 0.33)
    first = np.asarray(picture.crop([round(v * s) for v, s in zip(grids[0][0], size * 2)]).resize((64, 64)))
    assert np.abs(shifted.numpy()[0] - first).mean() > 10  # the tolerance can fail: the next tile is far outside it


def test_prepare_routes_formats_tf_cannot_read_faithfully_through_pillow():
    plain = colour_picture((10, 200, 30))
    assert preprocess.prepare(plain, "a.jpg", 32, 10**7) is plain  # TF decodes it as it is
    for data in (picture_bytes("TIFF"), picture_bytes("JPEG", mode="CMYK"), picture_bytes("PNG", mode="I;16")):
        routed = preprocess.prepare(data, "x", 32, 10**7)
        assert routed[:2] == b"BM"  # a Pillow-made bitmap
    with pytest.raises(BadPicture, match="too large"):
        preprocess.prepare(picture_bytes("PNG", size=(500, 500)), "big.png", 32, 100_000)
    with pytest.raises(BadPicture, match="zero-byte"):
        preprocess.prepare(b"", "e.jpg", 32, 10**7)




def _scene(size=(720, 480)) -> Image.Image:
    """A picture with smooth shading and a few shapes: what squashing, JPEG and antialiasing act on."""
    from PIL import ImageDraw

    image = _gradient(size)
    draw = ImageDraw.Draw(image)
    draw.ellipse((200, 80, 420, 400), fill=(230, 60, 90))
    draw.rectangle((480, 200, 660, 440), fill=(40, 70, 200))
    draw.polygon([(60, 440), (160, 250), (260, 440)], fill=(250, 230, 40))
    return image


@pytest.mark.parametrize("fmt, options", [("JPEG", {"quality": 95}), ("PNG", {}), ("TIFF", {})])
def test_one_picture_gives_the_same_model_input_on_every_path(fmt, options, tmp_path):
    """Training sees (shards -> make_dataset) what evaluate and sort see (score_stream), TIFF via Pillow too."""
    from mona_pipeline.inference import Scorer, score_stream
    from mona_pipeline.trained import load_trained
    from mona_pipeline.config import ShardParams
    from mona_pipeline.shards import make_dataset, write_split
    from tests.conftest import make_colour_model

    size, shard_size = 64, 72  # the model input, and the shards' margin above it (as 128 / 144)
    original = tmp_path / f"scene.{fmt.lower()}"
    original.write_bytes(_encoded(_scene(), fmt, **options))
    # Training's own path: the picture written into a shard as the shards stage writes it, read back by make_dataset.
    row = {"path": original.name, "content_hash": "scene", "label_gender": 0, "label_lookalike": 0, "label_target": 0}
    shard_params = ShardParams(dir=tmp_path / "shards", image_size=shard_size)
    shard_params.dir.mkdir()
    entries = write_split([row], "validation", tmp_path, shard_params, 10**8)
    (shard_params.dir / "index.json").write_text(json.dumps({"image_size": shard_size, "shards": entries}))
    ((images, _),) = make_dataset(shard_params.dir, "validation", "target", 1, size, training=False)
    training_view = images[0].numpy()
    scorer = Scorer(load_trained(make_colour_model(tmp_path / "model", image_size=size)))
    (sorting,) = score_stream(scorer, [("scene", original.read_bytes())], 4, 10**8, with_images=True)
    assert sorting.image.shape == training_view.shape == (size, size, 3)
    difference = np.abs(sorting.image - training_view)
    assert difference.mean() < 5.0, difference.mean()  # JPEG re-encoding and resize kernels, nothing more
    assert np.percentile(difference, 99) < 40
    if fmt == "TIFF":
        assert preprocess.prepare(original.read_bytes(), original.name, size, 10**8)[:2] == b"BM"  # Pillow path


def test_a_squashed_picture_differs_from_another_picture():
    """The tolerance above can fail: a shifted picture is far outside it."""
    size = 64
    scene = _scene()
    view = preprocess.decode_for_model(tf.constant(_encoded(scene, "PNG")), size).numpy()
    shifted = preprocess.decode_for_model(tf.constant(_encoded(scene.transpose(Image.FLIP_LEFT_RIGHT), "PNG")),
                                          size).numpy()
    assert np.abs(view - shifted).mean() > 10


@pytest.mark.parametrize("strong", [False, True])
def test_augment_is_reproducible_shaped_and_in_range(strong):
    """Eagerly and under tf.function: the same seed gives the same picture, another seed another one."""
    image = tf.constant(np.asarray(_scene((144, 144))))
    compiled = tf.function(lambda seed: preprocess.augment(image, 128, seed, strong))
    for run in (lambda seed: preprocess.augment(image, 128, seed, strong), compiled):
        first = run(tf.constant([3, 9], tf.int64)).numpy()
        assert first.shape == (128, 128, 3) and first.dtype == np.float32
        assert 0.0 <= first.min() and first.max() <= 255.0
        np.testing.assert_array_equal(first, run(tf.constant([3, 9], tf.int64)).numpy())
        assert not np.array_equal(first, run(tf.constant([4, 9], tf.int64)).numpy())


def test_strong_augmentation_changes_more_of_the_picture_than_basic():
    image = tf.constant(np.asarray(_scene((144, 144))))
    plain = preprocess.resize_for_model(image, 128).numpy()

    def mean_change(strong: bool) -> float:
        return float(np.mean([np.abs(preprocess.augment(image, 128, tf.constant([k, 1], tf.int64), strong).numpy()
                                     - plain).mean() for k in range(24)]))

    assert mean_change(True) > mean_change(False) + 3


@pytest.mark.parametrize("fmt, save", [("JPEG", {"quality": 95}), ("PNG", {}), ("WEBP", {"lossless": True})])
def test_exif_orientation_is_applied_for_every_format_that_carries_it(fmt, save):
    """A phone stores a picture sideways with an orientation tag: the model must see it upright (issue 22)."""
    upright = Image.new("RGB", (96, 48), (220, 20, 20))
    upright.paste((20, 20, 220), (0, 24, 96, 48))  # red over blue
    exif = Image.Exif()
    exif[preprocess.EXIF_ORIENTATION] = 6  # "rotate 90 degrees clockwise to display"
    stored = _encoded(upright.transpose(Image.Transpose.ROTATE_90), fmt, exif=exif.tobytes(), **save)
    seen = preprocess.decode_for_model(tf.constant(preprocess.prepare(stored, f"x.{fmt}", 32, 10**8)), 32).numpy()
    expected = preprocess.decode_for_model(tf.constant(_encoded(upright, "PNG")), 32).numpy()
    assert np.abs(seen - expected).mean() < 8, np.abs(seen - expected).mean()
