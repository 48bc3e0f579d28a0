"""Shared fixtures: an isolated Prefect home, tiny pictures made in the test, tiny params."""

from __future__ import annotations

import os
import tempfile

# Before Prefect / TF are imported anywhere: isolated, quiet, offline.
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="mona-prefect-"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import io  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import yaml  # noqa: E402
from PIL import Image  # noqa: E402

from mona_pipeline.config import Params  # noqa: E402

TINY_PARAMS = {
    "target": "mona",
    # min_class_pictures 1: tiny classes of 2-10 pictures are the point here (mona check's minimum is tested
    # on its own, in test_check.py)
    "data": {"raw_dir": "data/raw", "test_dir": "data/test", "manifest_dir": "data/manifest", "min_class_pictures": 1},
    "demo": {"seed": 3, "pictures_per_character": 6, "target_pictures": 10, "test_pictures": 24,
             "extras_per_gender": 0, "min_side": 64, "max_side": 96},
    "shards": {"dir": "data/shards", "image_size": 40, "target_shard_mb": 100},
    "stages": {
        "gender": {"classes": {"female": ["mona", "stella", "wanda", "nova", "luna", "rosa", "yuki", "kiri"],
                               "male": ["kaito", "ren", "gil", "taro"]},
                   "head_epochs": 1, "finetune_epochs": 1},
        "lookalike": {"classes": {"lookalike": ["mona", "stella", "wanda", "nova", "luna", "ren", "gil"],
                                  "different": ["rosa", "yuki", "kiri", "kaito", "taro"]},
                      "head_epochs": 1, "finetune_epochs": 1},
        "target": {"classes": {"mona": ["mona"], "others": ["*"]}, "head_epochs": 1, "finetune_epochs": 1},
    },
    "model": {"architecture": "mobilenetv3small", "image_size": 32, "width": 0.25},
    # basic, not the shipped strong augmentation: at 32 px the strong set's erasing and zoom leave a tiny
    # model one epoch nothing to learn from; test_preprocess runs the strong set itself, and
    # test_two_trainings_... the real precision policy.
    "train": {"batch_size": 8, "patience": 2, "precision": "float32", "augmentation": "basic"},
    "evaluate": {"timing_pictures": 3},
    "sort": {"batch_size": 8},
}


def tiny_params(root: Path, **overrides) -> Params:
    """TINY_PARAMS with every path under root; `overrides` replaces whole sections."""
    raw = yaml.safe_load(yaml.safe_dump(TINY_PARAMS, sort_keys=False))  # class order is meaningful
    data = raw["data"] | overrides.pop("data", {})
    raw.update(overrides)
    raw["data"] = {k: str(root / v) if k.endswith("_dir") else v for k, v in data.items()}
    raw["shards"]["dir"] = str(root / raw["shards"]["dir"])
    return Params.model_validate(raw)


def write_params(path: Path, params: Params) -> Path:
    path.write_text(yaml.safe_dump(params.model_dump(mode="json"), sort_keys=False))
    return path


def picture_bytes(fmt: str = "JPEG", size=(48, 32), mode: str = "RGB", seed: int = 0, **save) -> bytes:
    """A small picture with structure (so hashes differ between seeds)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (4, 6, 3), dtype=np.uint8)
    image = Image.fromarray(base, "RGB").resize(size, Image.NEAREST)
    if mode != "RGB":
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **save)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=90):
        yield


@pytest.fixture(scope="session")
def demo_project(tmp_path_factory) -> tuple[Path, Params]:
    """A tiny demo data set, ingested and sharded once per session: (root, params)."""
    from mona_pipeline import demo, ingest, shards

    root = tmp_path_factory.mktemp("demo")
    params = tiny_params(root)
    demo.generate_raw(params.demo, params.data.raw_dir, params.target)
    demo.generate_test(params.demo, params.data.test_dir, params.target)
    ingest.run_ingest(params.data, params.stages)
    shards.write_shards(params.data, params.shards, params.stages)
    return root, params


def colour_picture(colour, fmt: str = "JPEG", size=(48, 40), **save) -> bytes:
    """A flat picture of one colour (the colour model scores red high and blue low)."""
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, fmt, **save)
    return buffer.getvalue()


def make_colour_model(folder: Path, image_size: int = 32, threshold: float = 0.9, target: str = "mona",
                      weights=(1.0, 0.0, -1.0)) -> Path:
    """A real, tiny Keras model saved like a trained stage: score = sigmoid(20 * (red - blue)).

    Pure red scores ~1, pure blue ~0, grey 0.5; (200, 100, 100) about 0.9997 and
    (140, 100, 120) about 0.65, so tests can aim at keep, review and drop. Other `weights` (of red, green,
    blue) and `target` make another character's model: (0, 1, -1) finds green (and yellow).
    """
    import json

    import keras

    from mona_pipeline.models import attach_head

    inputs = keras.Input((image_size, image_size, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1.0 / 255.0)(inputs))
    backbone = keras.Model(inputs, pooled, name="backbone")
    model = attach_head(backbone, 2, 0.0)
    column = 10.0 * np.asarray(weights, "float32")[:, np.newaxis]
    model.get_layer("head").set_weights([np.concatenate([column, -column], axis=1), np.zeros(2, "float32")])
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / "model.keras")
    (folder / "metadata.json").write_text(json.dumps({
        "stage": "target", "class_names": [target, "others"], "positive_class": target, "target": target,
        "image_size": image_size, "threshold": threshold, "precision_policy": "float32"}))
    return folder


@pytest.fixture(scope="session")
def colour_model(tmp_path_factory) -> Path:
    return make_colour_model(tmp_path_factory.mktemp("colour-model") / "target")
