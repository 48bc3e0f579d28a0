"""The shared scoring path: every format, every broken file, one result per picture, in order."""

from mona_pipeline.images import BadPicture
from mona_pipeline.inference import Scorer, score_stream
from mona_pipeline.trained import load_trained
from tests.conftest import colour_picture


def test_score_stream_gives_one_result_per_item_in_order(colour_model):
    scorer = Scorer(load_trained(colour_model))
    good = [(f"red{i}", colour_picture((230, 10, 10), size=(30 + i, 30))) for i in range(10)]
    good += [(f"blue{i}", colour_picture((10, 10, 230), "PNG")) for i in range(10)]
    bad = [("empty", b""), ("text", b"hello world" * 9), ("cut", colour_picture((1, 2, 3), size=(200, 200))[:200]),
           ("unreadable", BadPicture("unreadable: permission denied"))]
    items = good[:7] + bad[:2] + good[7:15] + bad[2:] + good[15:]
    results = list(score_stream(scorer, iter(items), batch_size=4))
    assert sorted(r.key for r in results) == sorted(key for key, _ in items)
    scored = [r.key for r in results if r.score is not None]
    assert scored == [key for key, _ in good]  # readable pictures come out in their order
    by_key = {r.key: r for r in results}
    assert all(by_key[f"red{i}"].score > 0.99 for i in range(10))
    assert all(by_key[f"blue{i}"].score < 0.01 for i in range(10))
    assert "zero-byte" in by_key["empty"].error and "permission denied" in by_key["unreadable"].error
    assert by_key["cut"].score is None and by_key["cut"].error


def test_scores_are_temperature_scaled_as_the_model_says(tmp_path):
    import json

    import numpy as np

    from mona_pipeline.metrics import temper
    from tests.conftest import make_colour_model

    folder = make_colour_model(tmp_path / "model")
    pictures = [(f"p{i}", colour_picture((120 + 10 * i, 100, 110))) for i in range(6)]  # scores 0.4-0.99
    plain = [r.score for r in score_stream(Scorer(load_trained(folder)), iter(pictures))]
    metadata = json.loads((folder / "metadata.json").read_text())
    (folder / "metadata.json").write_text(json.dumps(metadata | {"temperature": 2.0}))
    softened = [r.score for r in score_stream(Scorer(load_trained(folder)), iter(pictures))]
    np.testing.assert_allclose(softened, temper(np.array(plain), 2.0), atol=1e-5)
    assert max(softened) < max(plain) and softened != plain
