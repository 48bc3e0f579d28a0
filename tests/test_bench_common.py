"""The benchmarks' interleaved A/B comparison (bench/common.py), with made-up values: no timing is asserted."""

import pytest

from bench.common import MIN_PAIRS, compare_interleaved, ratio_text, summarize_pairs


def recorder(name: str, values: list[float], calls: list[str]):
    """A measure that logs its call and returns the next of `values`."""
    remaining = iter(values)

    def measure() -> float:
        calls.append(name)
        return next(remaining)

    return measure


def test_pairs_alternate_after_a_warm_up_of_each_side():
    calls: list[str] = []
    result = compare_interleaved(recorder("a", [1.0] * 7, calls), recorder("b", [1.0] * 7, calls),
                                 a="fast", b="slow", unit="pictures/s", pairs=5, warmup=2)

    assert calls[:4] == ["a", "b", "a", "b"]  # the warm-ups, not recorded
    assert calls[4:] == list("ab" "ba" "ab" "ba" "ab")
    assert result["orders"] == ["ab", "ba", "ab", "ba", "ab"]
    assert (result["pairs"], result["warmup"], result["unit"]) == (5, 2, "pictures/s")
    assert len(result["values"]["fast"]) == len(result["values"]["slow"]) == 5


def test_ratio_is_the_median_of_pair_ratios_not_the_ratio_of_medians():
    calls: list[str] = []
    # after one warm-up value each, pairs (a, b): (10, 10) (20, 10) (30, 10) (40, 40) (50, 100)
    result = compare_interleaved(recorder("a", [99.0, 10, 20, 30, 40, 50], calls),
                                 recorder("b", [99.0, 10, 10, 10, 40, 100], calls), a="a", b="b", unit="s")

    assert result["values"] == {"a": [10, 20, 30, 40, 50], "b": [10, 10, 10, 40, 100]}
    assert result["ratio"] == {"ratios": [1.0, 2.0, 3.0, 1.0, 0.5], "median": 1.0, "min": 0.5, "max": 3.0}
    assert result["medians"] == {"a": 30, "b": 10}  # their ratio, 3.0, is not what is reported


def test_result_records_the_processor_and_the_load_before_and_after():
    result = compare_interleaved(lambda: 2.0, lambda: 1.0, a="a", b="b", unit="steps/s")

    assert isinstance(result["cpu"], str) and result["cpu"]
    assert len(result["load_start"]) == len(result["load_end"]) == 3
    assert result["ratio"]["median"] == 2.0


@pytest.mark.parametrize("pairs", [0, 1, MIN_PAIRS - 1])
def test_fewer_pairs_than_the_minimum_is_an_error_naming_the_value(pairs):
    with pytest.raises(ValueError, match=f"at least {MIN_PAIRS}.*got {pairs}"):
        compare_interleaved(lambda: 1.0, lambda: 1.0, a="a", b="b", unit="s", pairs=pairs)


def test_table_text_shows_median_min_max_and_pairs():
    comparison = {"ratio": summarize_pairs([1.0, 4.0, 3.0, 2.0, 5.0], [2.0, 2.0, 2.0, 2.0, 2.0]), "pairs": 5}

    assert ratio_text(comparison) == "1.50 (0.50-2.50), 5 pairs"


def test_tiling_cascade_replays_the_sorts_tile_rule():
    """bench/tiling_cascade.py: a tile keeps a picture only where its whole score reached auto_from."""
    from bench.tiling_cascade import replay
    from mona_pipeline.config import TilingParams

    rows = [  # a small figure (whole score near 0, found by a tile), a plain keep, a tile false alarm
        {"whole_score": "0.002", "tile_score": "0.99", "target": "1", "part": "small"},
        {"whole_score": "0.97", "tile_score": "", "target": "1", "part": "in_distribution"},
        {"whole_score": "0.30", "tile_score": "0.96", "target": "0", "part": "in_distribution"},
    ]
    every = replay(rows, 0.95, TilingParams(mode="auto", auto_from=0.0))
    assert (every["tiled"], every["recall"], every["false_alarms"], every["small_recall"]) == (0.667, 1.0, 1, 1.0)
    warm = replay(rows, 0.95, TilingParams(mode="auto", auto_from=0.01))
    assert (warm["tiled"], warm["recall"], warm["false_alarms"], warm["small_recall"]) == (0.333, 0.5, 1, 0.0)
    off = replay(rows, 0.95, TilingParams(mode="off"))
    assert (off["tiled"], off["precision"], off["false_alarms"]) == (0.0, 1.0, 0)


def test_coarse_to_fine_replays_the_sorts_cascade():
    """bench/coarse_to_fine.py: a fine tile counts only under a warm coarse one, as the sort scores it."""
    import numpy as np

    from bench.coarse_to_fine import replay
    from mona_pipeline.config import TilingParams

    boxes = np.array([[0, 0, .5, 1], [.5, 0, 1, 1], [0, 0, .3, .5], [.7, .5, 1, 1]], np.float32)
    scales = np.array([0, 0, 1, 1])

    def picture(target: bool, tile_scores: list[float]) -> dict:
        return {"whole": 0.1, "target": target, "part": "small" if target else "", "boxes": boxes,
                "scales": scales, "tile_scores": np.array(tile_scores)}

    pictures = [picture(True, [0.4, 0.1, 0.97, 0.2]),   # a small figure: its coarse tile is warm, its fine one finds it
                picture(False, [0.1, 0.1, 0.2, 0.96])]  # a fine-tile false alarm under cold coarse tiles
    tiling = TilingParams(mode="auto")
    every = replay(pictures, tiling, 0.95)
    assert (every["tiles_per_picture"], every["recall"], every["false_alarms"]) == (4.0, 1.0, 1)
    refined = replay(pictures, tiling, 0.95, 0.3)
    assert (refined["tiles_per_picture"], refined["recall"], refined["false_alarms"]) == (2.5, 1.0, 0)
    assert replay(pictures, tiling, 0.95, 1.0)["small_recall"] == 0.0  # the coarse scale alone misses it


def test_coarse_to_fine_replays_another_tile_temperature_exactly():
    """Re-softening scores taken at 1.5 gives what scoring at T would, and the warm set follows it."""
    import numpy as np

    from bench.coarse_to_fine import replay, retempered
    from mona_pipeline.config import TilingParams
    from mona_pipeline.metrics import temper

    raw = np.array([0.3, 0.05, 0.97, 0.5])
    boxes = np.array([[0, 0, .5, 1], [.5, 0, 1, 1], [0, 0, .3, .5], [.7, .5, 1, 1]], np.float32)
    picture = {"whole": 0.1, "target": True, "part": "small", "boxes": boxes, "scales": np.array([0, 0, 1, 1]),
               "tile_scores": temper(raw, 1.5)}
    (sharper,) = retempered([picture], 1.5, 1.0)
    np.testing.assert_allclose(sharper["tile_scores"], raw, rtol=1e-6)
    tiling = TilingParams(mode="auto")
    assert replay([picture], tiling, 0.95, 0.2)["recall"] == 0.0  # at 1.5 the fine tile's 0.97 softens to 0.91
    at_one = replay([sharper], tiling.model_copy(update={"tile_temperature": 1.0}), 0.95, 0.2)
    assert (at_one["recall"], at_one["tiles_per_picture"], at_one["tile_temperature"]) == (1.0, 3.0, 1.0)
    # The coarse 0.3 is 0.36 at 1.5 (warm at a bar of 0.35: its fine tile is scored) and 0.3 at 1.0 (cold).
    assert replay([picture], tiling, 0.95, 0.35)["tiles_per_picture"] == 3.0
    assert replay([sharper], tiling.model_copy(update={"tile_temperature": 1.0}), 0.95, 0.35)[
        "tiles_per_picture"] == 2.0


def test_mirror_check_keeps_a_tile_only_when_its_mirror_agrees():
    """bench/mirror_check.py: "best" checks the best tile's mirror, "any" the next tile that reaches P too."""
    import numpy as np

    from bench.mirror_check import replay
    from mona_pipeline.config import TilingParams

    boxes = np.array([[0, 0, .5, 1], [.5, 0, 1, 1]], np.float32)

    def picture(target: bool, tiles: list[float], mirrors: list[float]) -> dict:
        return {"whole": 0.1, "target": target, "part": "small", "boxes": boxes, "scales": np.array([0, 0]),
                "tile_scores": np.array(tiles), "mirror_scores": np.array(mirrors)}

    pictures = [picture(True, [0.97, 0.96], [0.3, 0.9]),   # her: the best tile's mirror is low, the next agrees
                picture(False, [0.98, 0.2], [0.1, 0.2])]  # a look-alike one tile frames well
    tiling = TilingParams(mode="auto", refine_from=None)
    shipped = replay(pictures, tiling, 0.95, None, "best")
    assert (shipped["recall"], shipped["false_alarms"], shipped["mirror_checks_per_tiled_picture"]) == (1.0, 1, 0.0)
    best = replay(pictures, tiling, 0.95, 0.8, "best")
    assert (best["recall"], best["false_alarms"], best["mirror_checks_per_tiled_picture"]) == (0.0, 0, 1.0)
    anyone = replay(pictures, tiling, 0.95, 0.8, "any")
    assert (anyone["recall"], anyone["false_alarms"], anyone["small_recall"]) == (1.0, 0, 1.0)


def test_seed_ensemble_averages_the_seeds_logits():
    """bench/seed_ensemble.py: one seed sure, one unsure -> the mean logit, not the mean score."""
    import math

    from bench.seed_ensemble import ensemble_scores

    def row(whole: float, tile: float | None) -> dict:
        return {"whole_score": str(whole), "tile_score": "" if tile is None else str(tile)}

    tables = [{"a": row(0.99, 0.5), "b": row(0.2, None)}, {"a": row(0.5, 0.9), "b": row(0.2, 0.97)}]
    whole, tile = ensemble_scores(tables, "a")
    assert math.isclose(whole, 1 / (1 + math.exp(-math.log(99) / 2)), rel_tol=1e-6)  # 0.909, not 0.745
    assert math.isclose(tile, 0.75, rel_tol=1e-6)
    assert ensemble_scores(tables, "b")[1] is None  # a tile every seed looked at, or none
