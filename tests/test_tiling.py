"""Multi-scale scoring: the tile grid, the auto rule, a small figure found (and where) by evaluate and sort alike."""

import dataclasses
import io
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mona_pipeline.config import TilingParams
from mona_pipeline.inference import Scorer, score_stream
from mona_pipeline.preprocess import tile_grid
from mona_pipeline.trained import load_trained


def test_tiles_are_squares_at_the_pictures_aspect_covering_it_with_overlap():
    tiling = TilingParams(scales=[0.5], overlap=0.25)
    boxes = tile_grid(1920, 1080, tiling)
    assert len(boxes) == 5 * 3  # 540-pixel tiles, 405 apart: 5 across a wallpaper, 3 down
    for x0, y0, x1, y1 in boxes:
        assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1
        assert (x1 - x0) * 1920 == pytest.approx(540) and (y1 - y0) * 1080 == pytest.approx(540)
    assert {b[0] for b in boxes} >= {0.0} and max(b[2] for b in boxes) == pytest.approx(1.0)  # edge to edge
    assert max(b[3] for b in boxes) == pytest.approx(1.0)
    phone = tile_grid(1080, 2400, tiling)
    assert len(phone) == 3 * 6 and all((b[2] - b[0]) * 1080 == pytest.approx(540) for b in phone)
    assert len(tile_grid(1920, 1080, TilingParams(scales=[0.5, 0.33]))) > len(boxes)  # a finer scale adds tiles


def test_small_pictures_skip_the_scales_whose_tiles_would_be_too_small():
    tiling = TilingParams(scales=[0.5, 0.25], min_tile_side=96)
    assert tile_grid(150, 120, tiling) == []  # 60-pixel tiles: the whole picture is all there is
    only_coarse = tile_grid(400, 300, tiling)  # 150-pixel tiles yes, 75-pixel ones no
    assert only_coarse and all((b[2] - b[0]) * 400 == pytest.approx(150) for b in only_coarse)


def test_the_auto_rule_tiles_only_undecided_pictures():
    auto = TilingParams(mode="auto", auto_from=0.05)
    assert auto.needs_tiles(0.5, decisive=0.95) and auto.needs_tiles(0.05, decisive=0.95)
    assert not auto.needs_tiles(0.97, decisive=0.95)  # a keep already: tiles cannot change it
    assert not auto.needs_tiles(0.01, decisive=0.95)  # decisively not the target
    assert TilingParams(mode="always").needs_tiles(0.99, 0.95) and not TilingParams(mode="off").needs_tiles(0.5, 0.95)


def test_bad_tiling_params_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="fraction of the short side"):
        TilingParams(scales=[1.5])
    with pytest.raises(ValueError):
        TilingParams(mode="sometimes")


def scene(size=(400, 300), square=(300, 60, 64), fmt="PNG") -> bytes:
    """A grey picture with one small red square (x, y, side): the colour model's 'character'."""
    image = Image.new("RGB", size, (128, 128, 128))
    x, y, side = square
    image.paste((230, 10, 10), (x, y, x + side, y + side))
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def test_a_small_figure_is_found_by_its_tile_and_the_box_says_where(colour_model):
    scorer = Scorer(load_trained(colour_model))
    threshold = scorer.trained.metadata.threshold  # 0.9
    items = [("small", scene()), ("jpeg", scene(fmt="JPEG")), ("plain", scene(square=(0, 0, 1))),
             ("tiny", scene(size=(150, 100), square=(100, 20, 24))), ("broken", b"not a picture")]
    off = {r.key: r for r in score_stream(scorer, items, 2)}
    auto = {r.key: r for r in score_stream(scorer, items, 2, tiling=TilingParams(), decisive=threshold)}
    assert off["small"].score < threshold <= auto["small"].score  # missed whole, found in a tile
    assert auto["small"].whole_score == pytest.approx(off["small"].score, abs=1e-6)
    x0, y0, x1, y1 = auto["small"].box
    across = min(x1 * 400, 364) - max(x0 * 400, 300)
    down = min(y1 * 300, 124) - max(y0 * 300, 60)
    assert across > 0 and down > 0 and across * down >= 0.5 * 64 * 64  # it holds (most of) the square
    assert (x1 - x0) * 400 < 400 / 2  # a tile, not the whole picture
    assert auto["jpeg"].score >= threshold and auto["jpeg"].box is not None
    assert auto["plain"].tiles > 0 and auto["plain"].score < threshold  # looked at, nothing found: still a drop
    assert auto["tiny"].tiles == 0 and auto["tiny"].score == pytest.approx(off["tiny"].score)  # too small to tile
    assert auto["broken"].score is None and "not a picture" in auto["broken"].error
    assert sorted(auto) == sorted(key for key, _ in items)


@pytest.mark.parametrize("refine_from", [None, 0.6])
def test_evaluate_pools_tiles_exactly_as_the_sort_scores_them(colour_model, tmp_path, refine_from):
    """evaluate scores every tile once and derives each mode; auto must equal score_stream's auto."""
    from mona_pipeline.evaluate import LabelledSet, score_set

    scorer = Scorer(load_trained(colour_model))
    threshold = scorer.trained.metadata.threshold
    paths = []
    for index, square in enumerate([(300, 60, 64), (0, 0, 1), (100, 100, 200), (20, 200, 40), (200, 10, 90)]):
        path = tmp_path / f"p{index}.png"
        path.write_bytes(scene(square=square))
        paths.append(path)
    labelled = LabelledSet("test", paths, np.array([True] * 5), ["target"] * 5)
    tiling = TilingParams(mode="auto", auto_from=0.6, refine_from=refine_from)
    scores = score_set(scorer, labelled, 2, 10**8, tiling)
    streamed = {r.key: r.score for r in score_stream(scorer, [(str(p), p.read_bytes()) for p in paths], 2,
                                                     tiling=tiling, decisive=threshold)}
    np.testing.assert_allclose(scores.pooled(tiling, threshold), [streamed[str(p)] for p in paths], atol=1e-5)
    np.testing.assert_allclose(scores.pooled(tiling.model_copy(update={"mode": "off"}), threshold), scores.whole)
    assert 0 < scores.tiled_share(tiling, threshold) < 1  # the 0.6 floor leaves some pictures untiled


def test_a_sort_keeps_the_small_figure_and_records_its_box(colour_model, tmp_path):
    from mona_pipeline.sort import build_request, sort_source

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "small.png").write_bytes(scene())
    (inbox / "empty.png").write_bytes(scene(square=(0, 0, 1)))
    request = build_request(None, str(inbox), tmp_path / "out", {"model": colour_model, "action": "copy"})
    summary = sort_source(request)
    assert summary.counts["keep"] == 1 and (tmp_path / "out" / "keep" / "small.png").is_file()
    assert summary.tiling.mode == "auto" and summary.found_in_tiles == 1
    (found,) = summary.found_in_tiles_sample
    assert found["source"].endswith("small.png") and len(found["box"].split(",")) == 4
    with sqlite3.connect(summary.journal) as journal:
        boxes = dict(journal.execute("SELECT name, box FROM entries"))
    assert boxes["small.png"] == found["box"] and boxes["empty.png"] is None  # only a deciding tile's box
    assert "found in the outlined tile" in Path(summary.report).read_text()
    off = sort_source(build_request(None, str(inbox), tmp_path / "out-off",
                                    {"model": colour_model, "action": "copy", "tiling": "off"}))
    assert off.counts["keep"] == 0 and off.found_in_tiles == 0  # whole pictures alone miss it


def test_a_journal_from_before_tiling_opens_and_gains_the_box_column(tmp_path):
    from mona_pipeline.sort.journal import Journal

    path = tmp_path / "journal.sqlite"
    with sqlite3.connect(path) as old:
        old.executescript("""
            CREATE TABLE run (key TEXT PRIMARY KEY, value TEXT);
            CREATE TABLE entries (item_id TEXT PRIMARY KEY, source TEXT NOT NULL, name TEXT NOT NULL,
                content_hash TEXT, bytes INTEGER, score REAL, decision TEXT NOT NULL, action TEXT NOT NULL,
                destination TEXT, error TEXT, status TEXT NOT NULL, time REAL NOT NULL);
            INSERT INTO entries VALUES ('a.jpg', '/in/a.jpg', 'a.jpg', 'h', 3, 0.99, 'keep', 'copy', '/out/a.jpg',
                                        NULL, 'done', 1.0);""")
    with Journal(path) as journal:
        (entry,) = journal.entries()
        assert entry.name == "a.jpg" and entry.status == "done" and entry.box is None
        journal.plan([dataclasses.replace(entry, item_id="b.jpg", name="b.jpg", box="0.100,0.200,0.600,0.700")])
    with Journal(path) as journal:  # reopened: the new column holds what was written to it
        assert {e.name: e.box for e in journal.entries()} == {"a.jpg": None, "b.jpg": "0.100,0.200,0.600,0.700"}


def test_tile_scores_are_softened_by_the_tile_temperature(colour_model):
    from mona_pipeline.metrics import temper

    scorer = Scorer(load_trained(colour_model))
    items = [("small", scene())]
    (plain,) = score_stream(scorer, items, 2, tiling=TilingParams(tile_temperature=1.0), decisive=0.9)
    (soft,) = score_stream(scorer, items, 2, tiling=TilingParams(tile_temperature=3.0), decisive=0.9)
    assert soft.tile_score == pytest.approx(float(temper(np.array([plain.tile_score]), 3.0)[0]), abs=1e-5)
    assert plain.score >= 0.9 > soft.score  # a tile that barely passed no longer outvotes the whole picture


def test_a_tile_below_the_threshold_leaves_the_calibrated_whole_score(colour_model):
    """Only a tile that reaches the threshold decides; a plain maximum over dozens of tiles would raise every
    picture's score (on the demo the calibration error went from 0.09 to 0.33)."""
    scorer = Scorer(load_trained(colour_model))
    (result,) = score_stream(scorer, [("faint", scene(square=(300, 60, 30)))], 2, tiling=TilingParams(),
                             decisive=0.99)
    assert result.tiles > 0 and result.whole_score < result.tile_score < 0.99
    assert result.score == result.whole_score and result.box is None


def test_coarse_to_fine_scores_finer_tiles_only_under_warm_coarse_ones_and_finds_the_same(colour_model):
    from mona_pipeline.preprocess import tile_grid_by_scale

    scorer = Scorer(load_trained(colour_model))
    items = [("small", scene()), ("plain", scene(square=(0, 0, 1)))]  # grey alone scores 0.5: not warm at 0.6
    every = {r.key: r for r in score_stream(scorer, items, 2, tiling=TilingParams(refine_from=None), decisive=0.9)}
    refined = {r.key: r for r in score_stream(scorer, items, 2, tiling=TilingParams(refine_from=0.6),
                                              decisive=0.9)}
    coarse, fine = (len(grid) for grid in tile_grid_by_scale(400, 300, TilingParams()))
    assert every["small"].tiles == coarse + fine
    assert coarse < refined["small"].tiles < coarse + fine  # the fine tiles near the square only
    assert refined["small"].score == pytest.approx(every["small"].score) and refined["small"].score >= 0.9
    assert refined["small"].box == every["small"].box
    assert (refined["small"].box[2] - refined["small"].box[0]) * 400 < 150  # found by a fine tile
    assert refined["plain"].tiles == coarse and refined["plain"].score == pytest.approx(every["plain"].score)


def test_finer_tiles_are_those_overlapping_a_warm_coarser_tile_for_each_model_apart():
    from mona_pipeline.inference import finer_tiles

    coarser = np.array([[0.0, 0.0, 0.5, 1.0], [0.5, 0.0, 1.0, 1.0]], np.float32)
    finer = np.array([[0.0, 0.0, 0.3, 0.5], [0.35, 0.0, 0.65, 0.5], [0.7, 0.5, 1.0, 1.0]], np.float32)
    scores = np.array([[0.1, 0.0], [0.0, 0.6]])  # two models: the right half is warm for the second
    boxes, wanted = finer_tiles(finer, coarser, scores, 0.5)
    np.testing.assert_array_equal(boxes, finer[1:])
    np.testing.assert_array_equal(wanted, [[False, True], [False, True]])  # the first model wants none
    boxes, wanted = finer_tiles(finer, coarser, np.array([[0.7, 0.0], [0.0, 0.6]]), 0.5)
    np.testing.assert_array_equal(boxes, finer)  # the middle tile overlaps both halves: both models want it
    np.testing.assert_array_equal(wanted, [[True, False], [True, True], [False, True]])
    boxes, wanted = finer_tiles(finer, coarser, scores, None)
    assert (boxes == finer).all() and wanted.all() and wanted.shape == (3, 2)
    assert finer_tiles(finer, coarser, scores, 0.9)[0].shape == (0, 4)
    assert finer_tiles(finer, coarser, np.array([[np.nan, 0.0], [np.nan, 0.0]]), 0.5)[0].shape == (0, 4)
    with pytest.raises(ValueError):
        TilingParams(refine_from=1.5)


class Counting:
    """A scorer that counts the pictures (whole ones and tiles) it is asked to score."""

    def __init__(self, scorer: Scorer):
        self.scorer, self.image_size, self.rows = scorer, scorer.image_size, 0

    def __call__(self, images):
        self.rows += int(images.shape[0])
        return self.scorer(images)


def test_each_model_of_a_panel_scores_the_tiles_it_would_alone_and_decides_alike(colour_model, tmp_path):
    """Coarse to fine, per model: a finer tile is scored only by the models warm above it, so a model beside
    others scores and decides exactly as alone (and pays for no other model's finer tiles)."""
    from tests.conftest import make_colour_model
    from mona_pipeline.inference import Panel

    green_model = make_colour_model(tmp_path / "green", target="green", weights=(0.0, 1.0, -1.0))
    image = Image.open(io.BytesIO(scene(square=(300, 60, 64))))
    image.paste((10, 230, 10), (40, 200, 104, 264))  # a green square far from the red one
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    items = [("both", buffer.getvalue()), ("red", scene()), ("plain", scene(square=(0, 0, 1)))]
    tiling = TilingParams(refine_from=0.6)
    red, green = Counting(Scorer(load_trained(colour_model))), Counting(Scorer(load_trained(green_model)))
    alone = []
    for counting in (red, green):
        alone.append(({r.key: r for r in score_stream(counting, items, 2, tiling=tiling, decisive=0.9)},
                      counting.rows))
        counting.rows = 0
    together = {r.key: r for r in score_stream(Panel([red, green]), items, 2, tiling=tiling, decisive=[0.9, 0.9])}
    for column, (counting, (results, rows)) in enumerate(zip((red, green), alone)):
        assert counting.rows == rows  # its own whole pictures and tiles, none of the other model's
        for key, result in results.items():
            assert together[key].scores[column] == pytest.approx(result.score, abs=1e-6)
            assert together[key].boxes[column] == result.box
    assert together["both"].scores[0] >= 0.9 and together["both"].scores[1] >= 0.9  # each found its square
    assert together["both"].boxes[0] != together["both"].boxes[1]
    assert together["red"].scores[1] < 0.9  # no green there


def test_the_evaluation_scores_every_model_from_one_pass_as_each_alone(colour_model, tmp_path):
    from mona_pipeline.evaluate import LabelledSet, score_models, score_set
    from mona_pipeline.inference import Panel
    from tests.conftest import make_colour_model

    green_model = make_colour_model(tmp_path / "green", target="green", weights=(0.0, 1.0, -1.0))
    paths = []
    for index, square in enumerate([(300, 60, 64), (0, 0, 1), (100, 100, 200), (20, 200, 40)]):
        path = tmp_path / f"p{index}.png"
        image = Image.open(io.BytesIO(scene(square=square)))
        image.paste((10, 230, 10), (200 - 30 * index, 180, 240 - 30 * index, 220))  # and a green square
        image.save(path)
        paths.append(path)
    labelled = LabelledSet("test", paths, np.array([True] * 4), ["target"] * 4)
    scorers = [Scorer(load_trained(colour_model)), Scorer(load_trained(green_model))]
    tiling = TilingParams(refine_from=0.6)
    together = score_models(Panel(scorers), labelled, 2, 10**8, tiling)
    for scorer, shared in zip(scorers, together):
        alone = score_set(scorer, labelled, 2, 10**8, tiling)
        np.testing.assert_allclose(shared.whole, alone.whole, atol=1e-6)
        np.testing.assert_allclose(shared.tiles, alone.tiles, atol=1e-6)
        assert shared.boxes == alone.boxes
    assert together[0].boxes != together[1].boxes  # red and green are found in other tiles
