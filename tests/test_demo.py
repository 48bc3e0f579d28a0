import csv

from PIL import Image

from mona_pipeline import demo
from mona_pipeline.config import DemoParams

SMALL = DemoParams(seed=11, pictures_per_character=2, target_pictures=3, extras_per_gender=0, test_pictures=20, min_side=64, max_side=96)


def _tree_bytes(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_draws_the_same_files(tmp_path):
    demo.generate_raw(SMALL, tmp_path / "a")
    demo.generate_raw(SMALL, tmp_path / "b")
    first, second = _tree_bytes(tmp_path / "a"), _tree_bytes(tmp_path / "b")
    assert first == second
    assert len(first) == 11 * 2 + 3  # eleven others, three of the target


def test_another_seed_draws_other_pictures(tmp_path):
    demo.generate_raw(SMALL, tmp_path / "a")
    demo.generate_raw(SMALL.model_copy(update={"seed": 12}), tmp_path / "b")
    assert _tree_bytes(tmp_path / "a") != _tree_bytes(tmp_path / "b")


def test_raw_folders_are_tags_and_pictures_decode(tmp_path):
    demo.generate_raw(SMALL, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(c.name for c in demo.CAST)
    suffixes = set()
    for path in tmp_path.rglob("*.*"):
        with Image.open(path) as image:
            image.load()
            assert 64 <= max(image.size) <= 96
        suffixes.add(path.suffix)
    assert suffixes <= {".jpg", ".png", ".webp"} and ".jpg" in suffixes


def test_test_set_labels_match_the_characters_drawn(tmp_path):
    params = SMALL.model_copy(update={"test_pictures": 120, "test_target_fraction": 0.15})
    demo.generate_test(params, tmp_path)
    with open(tmp_path / "labels.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 120
    for row in rows:
        assert (tmp_path / row["path"]).is_file()
        names = row["characters"].split(";") if row["characters"] else []
        assert row["target"] == str(int("mona" in names))
        assert row["kind"] == demo.picture_kind(names, "mona")
    targets = sum(int(r["target"]) for r in rows)
    assert 8 <= targets <= 30  # about 15 % of 120
    assert {r["kind"] for r in rows} >= {"target", "lookalike", "other"}


def test_a_pool_is_drawn_apart_from_the_test_archive_and_labelled(tmp_path):
    params = SMALL.model_copy(update={"test_pictures": 30})
    demo.generate_test(params, tmp_path / "test")
    assert demo.generate_pool(params, tmp_path / "pool", 30, seed=9) == 30
    test_bytes = {path.read_bytes() for path in (tmp_path / "test/images").iterdir()}
    pool = sorted((tmp_path / "pool/images").iterdir())
    assert len(pool) == 30 and all(path.name.startswith("pool_") for path in pool)
    assert not test_bytes & {path.read_bytes() for path in pool}
    with open(tmp_path / "pool/labels.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["path"] for row in rows] == [f"images/{path.name}" for path in pool]
    demo.generate_pool(params, tmp_path / "again", 30, seed=9)
    assert [p.read_bytes() for p in pool] == [p.read_bytes() for p in sorted((tmp_path / "again/images").iterdir())]


def test_only_the_combination_identifies_the_target():
    cast = demo.cast_by_name()
    mona = cast["mona"]
    signature = lambda c: (c.hair, c.hair_style, c.hat, "star" in c.accessories, c.outfit)  # noqa: E731
    for character in demo.CAST[1:]:
        assert signature(character) != signature(mona)
    lookalikes = [c for c in demo.CAST if c.lookalike]
    assert any(c.hair == mona.hair and c.hat == "none" for c in lookalikes)  # her hair without the hat
    assert any(c.hat == "witch" and c.hair != mona.hair for c in lookalikes)  # the hat with other hair
    assert any(c.outfit == mona.outfit and c.hair != mona.hair for c in lookalikes)  # her outfit, another face


def test_character_sprite_has_requested_height_and_transparency():
    sprite = demo.draw_character(demo.CAST[0], 120)
    assert sprite.mode == "RGBA" and sprite.height == 120
    alpha = sprite.getchannel("A")
    assert alpha.getextrema() == (0, 255)  # transparent background, opaque character


def test_the_test_archive_holds_out_what_training_never_shows(tmp_path):
    params = SMALL.model_copy(update={"test_pictures": 160, "held_out_fraction": 0.5, "held_out_target_fraction": 0.5})
    demo.generate_test(params, tmp_path)
    with open(tmp_path / "labels.csv") as handle:
        rows = list(csv.DictReader(handle))
    parts = {r["part"] for r in rows}
    assert "in_distribution" in parts and len(parts & set(demo.HELD_OUT_PARTS)) >= 6
    small = [float(r["target_height"]) for r in rows if r["part"] == "small" and r["target"] == "1"]
    assert small and max(small) <= 0.21  # the target about 10-20% of the picture height
    crowds = [r for r in rows if r["part"] == "crowd"]
    assert crowds and all(4 <= len(r["characters"].split(";")) <= 6 for r in crowds)
    assert all(r["target_height"] == "" for r in rows if r["target"] == "0")


def test_held_out_looks_draw_differently_and_training_looks_stay_in_their_set():
    import random

    mona = demo.CAST[0]
    plain = demo.draw_character(mona, 120)
    for look in (demo.Look(pose="hips"), demo.Look(expression="closed"), demo.Look(outfit_variant=True),
                 *(demo.Look(style=style) for style in demo.HELD_OUT_STYLES)):
        assert demo.draw_character(mona, 120, look).tobytes() != plain.tobytes(), look
    rng = random.Random(0)
    for _ in range(50):
        look = demo.training_look(rng)
        assert look.pose in demo.TRAIN_POSES and look.expression == "smile" and look.style == "flat"
        assert not look.outfit_variant


def test_extras_are_a_broad_cast_that_never_repeats_the_target(tmp_path):
    import random

    params = SMALL.model_copy(update={"extras_per_gender": 3})
    demo.generate_raw(params, tmp_path)
    assert len(list((tmp_path / "extra_female").iterdir())) == len(list((tmp_path / "extra_male").iterdir())) == 3
    rng = random.Random(1)
    extras = [demo.random_extra(rng.choice(["female", "male"]), rng) for _ in range(300)]
    assert len({(e.hair, e.hair_style, e.outfit, e.hat) for e in extras}) > 250  # many different characters
    assert not any(e.hat == "witch" and "star" in e.accessories for e in extras)
