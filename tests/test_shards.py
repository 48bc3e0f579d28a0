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
        assert sum(e["pictures"] for e in index["shards"] if e["split"] == split) == expected
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
