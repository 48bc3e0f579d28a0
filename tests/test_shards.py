import json

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from mona_pipeline import shards
from mona_pipeline.ingest import read_manifest


def _records(shard_dir, split):
    index = json.loads((shard_dir / "index.json").read_text())
    files = [str(shard_dir / e["file"]) for e in index["shards"] if e["split"] == split]
    return [shards.parse_example(r) for r in tf.data.TFRecordDataset(files)]


def test_round_trip_every_picture_with_every_label(demo_project):
    root, params = demo_project
    manifest = {r["content_hash"]: r for r in read_manifest(params.data.manifest_dir).to_pylist()}
    seen = {}
    for split in shards.SPLITS:
        for example in _records(params.shards.dir, split):
            key = example["content_hash"].numpy().decode()
            if "#tile" in key:  # a tile negative (shards.tile_negatives, on by default): its own test below
                continue
            row = manifest[key]
            assert row["split"] == split
            assert example["path"].numpy().decode() == row["path"]
            for stage in ("gender", "lookalike", "target"):
                assert int(example[f"label_{stage}"]) == row[f"label_{stage}"]
            seen[key] = example
    assert set(seen) == set(manifest)  # every picture once, none lost
    # The stored picture is the original squashed to shards.image_size (JPEG: close, not exact).
    key, example = next(iter(seen.items()))
    stored = tf.io.decode_jpeg(example["image"]).numpy()
    size = params.shards.image_size
    assert stored.shape == (size, size, 3)
    original = Image.open(params.data.raw_dir / manifest[key]["path"]).convert("RGB").resize((size, size), Image.BILINEAR)
    assert np.abs(stored.astype(int) - np.asarray(original).astype(int)).mean() < 12


def test_index_counts_match_the_manifest(demo_project):
    _, params = demo_project
    index = shards.read_index(params.shards.dir)
    rows = read_manifest(params.data.manifest_dir).to_pylist()
    for split in shards.SPLITS:
        expected = sum(1 for r in rows if r["split"] == split)
        tiles = params.shards.tile_negatives * sum(1 for r in rows if r["split"] == split == "train"
                                                   and r["label_target"] == 1)
        assert index["tiles"][split] == tiles
        assert sum(e["pictures"] for e in index["shards"] if e["split"] == split) == expected + tiles
        female = sum(1 for r in rows if r["split"] == split and r["label_gender"] == 0)
        assert index["counts"][split]["gender"]["female"] == female


@pytest.mark.parametrize("training", [True, False])
def test_make_dataset_shapes_and_dtypes(demo_project, training):
    _, params = demo_project
    dataset = shards.make_dataset(params.shards.dir, "train", "target", batch_size=4, image_size=32, training=training)
    images, labels = next(iter(dataset))
    assert images.shape == (4, 32, 32, 3) and images.dtype == tf.float32
    assert labels.shape == (4,) and labels.dtype == tf.int32
    assert 0.0 <= float(tf.reduce_min(images)) and float(tf.reduce_max(images)) <= 255.0
    assert dataset.element_spec[0].shape.as_list() == [None, 32, 32, 3]

    @tf.function
    def first_batch_shape(ds):
        return tf.shape(ds.take(1).get_single_element()[0])
    assert first_batch_shape(dataset).numpy().tolist() == [4, 32, 32, 3]


def test_a_stage_selects_only_its_labelled_pictures(demo_project):
    _, params = demo_project
    rows = read_manifest(params.data.manifest_dir).to_pylist()
    ds = shards.make_dataset(params.shards.dir, "train", "gender", batch_size=64, image_size=32, training=False)
    labels = np.concatenate([y.numpy() for _, y in ds])
    expected = [r["label_gender"] for r in rows if r["split"] == "train" and r["label_gender"] >= 0]
    assert sorted(labels.tolist()) == sorted(expected)


def test_training_order_and_augmentation_are_reproducible(demo_project):
    _, params = demo_project
    make = lambda: shards.make_dataset(params.shards.dir, "train", "target", 8, 32, training=True, seed=5)  # noqa: E731
    first, second = next(iter(make())), next(iter(make()))
    np.testing.assert_array_equal(first[1].numpy(), second[1].numpy())
    np.testing.assert_allclose(first[0].numpy(), second[0].numpy())


def test_bad_split_or_stage_is_named(demo_project):
    _, params = demo_project
    with pytest.raises(ValueError, match="split must be one of"):
        shards.make_dataset(params.shards.dir, "test", "target", 4, 32, training=False)
    with pytest.raises(ValueError, match="stage must be one of"):
        shards.make_dataset(params.shards.dir, "train", "hair", 4, 32, training=False)


def test_shard_count_plan():
    assert shards.plan_shard_count(10, 5_000, 100) == 1
    assert shards.plan_shard_count(1000, 5_000, 100) == 4  # small set: a few shards for parallel reads
    assert shards.plan_shard_count(100_000, 200_000, 100) == 200  # ~100 MB each


def test_tile_negatives_are_tiles_of_negative_training_pictures_labelled_for_the_target_stage_only(demo_project,
                                                                                                tmp_path):
    """shards.tile_negatives: each training picture of the target stage's negative class gives that many of
    its tiles, cut as a sort's tiling cuts them; positives and the validation split give none."""
    from mona_pipeline.preprocess import tile_grid

    root, params = demo_project
    tiled = params.shards.model_copy(update={"dir": tmp_path / "shards", "tile_negatives": 2})
    tiling = params.tiling.model_copy(update={"min_tile_side": 16})  # the tiny demo's pictures are 64-96 pixels
    index = shards.write_shards(params.data, tiled, params.stages, tiling)
    manifest = read_manifest(params.data.manifest_dir).to_pylist()
    negatives = [r for r in manifest if r["split"] == "train" and r["label_target"] == 1]
    assert index["tiles"] == {"train": 2 * len(negatives), "validation": 0}
    records = _records(tiled.dir, "train")
    tiles = [e for e in records if "#tile" in e["path"].numpy().decode()]
    assert len(tiles) == 2 * len(negatives) and len(records) == len(tiles) + sum(r["split"] == "train" for r in manifest)
    assert {(int(e["label_gender"]), int(e["label_lookalike"]), int(e["label_target"])) for e in tiles} == {(-1, -1, 1)}
    assert index["counts"]["train"]["target"]["others"] == 3 * len(negatives)  # class weights see the tiles
    # A tile is a crop of its picture at one of the sort's scales, squashed like a whole picture.
    example = tiles[0]
    source_path = params.data.raw_dir / example["path"].numpy().decode().split("#tile")[0]
    picture = Image.open(source_path).convert("RGB")
    boxes = tile_grid(picture.width, picture.height, tiling)
    assert boxes
    size = tiled.image_size
    stored = tf.io.decode_jpeg(example["image"]).numpy().astype(int)
    crops = [np.asarray(picture.crop((round(x0 * picture.width), round(y0 * picture.height),
                                      round(x1 * picture.width), round(y1 * picture.height)))
                        .resize((size, size), Image.BILINEAR)).astype(int) for x0, y0, x1, y1 in boxes]
    assert min(np.abs(stored - crop).mean() for crop in crops) < 12
    # The same tiles every time: the draw comes from the picture's hash.
    again = shards.write_shards(params.data, tiled.model_copy(update={"dir": tmp_path / "again"}), params.stages,
                                tiling)
    assert [e["file"] for e in again["shards"]] == [e["file"] for e in index["shards"]]
    assert [r["image"].numpy() for r in _records(tmp_path / "again", "train")] == [r["image"].numpy() for r in records]
