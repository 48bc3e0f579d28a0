"""A picture's decision from its score, the confidence P and the review band."""

from mona_pipeline.sort import decide


def test_decide_with_and_without_review_band():
    assert [decide(s, 0.9, None) for s in (0.95, 0.9, 0.6, 0.1, None)] == ["keep", "keep", "drop", "drop",
                                                                         "unreadable"]
    assert [decide(s, 0.9, 0.5) for s in (0.95, 0.6, 0.5, 0.4)] == ["keep", "review", "review", "drop"]
