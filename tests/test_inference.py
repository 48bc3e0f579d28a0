"""The shared scoring path: every format, every broken file, one result per picture, in order."""

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from mona_pipeline import inference
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
    decoded = inference.decode_for_model(tf.constant(data), 64).numpy()
    assert decoded.shape == (64, 64, 3) and decoded.dtype == np.float32
    reference = np.asarray(Image.open(io.BytesIO(data)).convert("RGB").resize((64, 64), Image.BOX), np.float32)
    assert np.abs(decoded - reference).mean() < 8  # downscaled JPEG decode and antialiased resize stay close


def test_prepare_routes_formats_tf_cannot_read_faithfully_through_pillow():
    plain = colour_picture((10, 200, 30))
    assert inference.prepare(plain, "a.jpg", 32, 10**7) is plain  # TF decodes it as it is
    for data in (picture_bytes("TIFF"), picture_bytes("JPEG", mode="CMYK"), picture_bytes("PNG", mode="I;16")):
        routed = inference.prepare(data, "x", 32, 10**7)
        assert routed[:2] == b"BM"  # a Pillow-made bitmap
    with pytest.raises(BadPicture, match="too large"):
        inference.prepare(picture_bytes("PNG", size=(500, 500)), "big.png", 32, 100_000)
    with pytest.raises(BadPicture, match="zero-byte"):
        inference.prepare(b"", "e.jpg", 32, 10**7)


def test_score_stream_gives_one_result_per_item_in_order(colour_model):
    from mona_pipeline.train import load_trained

    model, metadata = load_trained(colour_model)
    good = [(f"red{i}", colour_picture((230, 10, 10), size=(30 + i, 30))) for i in range(10)]
    good += [(f"blue{i}", colour_picture((10, 10, 230), "PNG")) for i in range(10)]
    bad = [("empty", b""), ("text", b"hello world" * 9), ("cut", colour_picture((1, 2, 3), size=(200, 200))[:200]),
           ("unreadable", BadPicture("unreadable: permission denied"))]
    items = good[:7] + bad[:2] + good[7:15] + bad[2:] + good[15:]
    results = list(inference.score_stream(model, iter(items), 32, 0, batch_size=4))
    assert sorted(r.key for r in results) == sorted(key for key, _ in items)
    scored = [r.key for r in results if r.score is not None]
    assert scored == [key for key, _ in good]  # readable pictures come out in their order
    by_key = {r.key: r for r in results}
    assert all(by_key[f"red{i}"].score > 0.99 for i in range(10))
    assert all(by_key[f"blue{i}"].score < 0.01 for i in range(10))
    assert "zero-byte" in by_key["empty"].error and "permission denied" in by_key["unreadable"].error
    assert by_key["cut"].score is None and by_key["cut"].error
