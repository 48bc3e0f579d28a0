"""The shared scoring path: every format, every broken file, one result per picture, in order."""

from mona_pipeline.images import BadPicture
from mona_pipeline.inference import Scorer, score_stream
from mona_pipeline.models import load_trained
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
