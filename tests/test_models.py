import keras
import numpy as np
import pytest
import tensorflow as tf

from mona_pipeline.config import ModelParams
from mona_pipeline.models import BACKBONE, HEAD, MonaCNNConfig, build_model, build_monacnn_backbone, replace_head


def test_monacnn_at_paper_size_ends_in_2x2x2048():
    # The paper: 512 x 512 input, seven valid 3x3 conv + 2x2 pool blocks -> a 2 x 2 x 2048 feature map.
    assert MonaCNNConfig().feature_size() == 2
    assert MonaCNNConfig(image_size=381).feature_size() == 0


def test_monacnn_layers_follow_the_paper_at_a_small_size():
    config = MonaCNNConfig(image_size=62, filters=(3, 8, 16), dense_units=(32, 16), dropout=0.3)
    backbone = build_monacnn_backbone(config)
    convs = [layer for layer in backbone.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [3, 8, 16] and all(c.kernel_size == (3, 3) for c in convs)
    denses = [layer for layer in backbone.layers if isinstance(layer, keras.layers.Dense)]
    assert [d.units for d in denses] == [32, 16]
    assert [d.rate for d in backbone.layers if isinstance(d, keras.layers.Dropout)] == [0.3, 0.3]
    # 62 -> 60 -> 30 -> 28 -> 14 -> 12 -> 6: a 6 x 6 x 16 map before flattening.
    flatten = next(layer for layer in backbone.layers if isinstance(layer, keras.layers.Flatten))
    assert tuple(flatten.input.shape[1:]) == (6, 6, 16)
    with pytest.raises(ValueError, match="needs a larger input"):
        build_monacnn_backbone(MonaCNNConfig(image_size=100))


@pytest.mark.parametrize("architecture, size, width", [("compactcnn", 32, 0.5), ("mobilenetv3small", 32, 0.5),
                                                       ("efficientnetv2b0", 32, 1.0)])  # a fixed width
def test_each_architecture_gives_two_probabilities(architecture, size, width):
    model = build_model(ModelParams(architecture=architecture, image_size=size, width=width), 2)
    images = np.random.default_rng(0).uniform(0, 255, (3, size, size, 3)).astype("float32")
    eager = model(images, training=False).numpy()
    compiled = tf.function(lambda x: model(x, training=False))(images).numpy()
    assert eager.shape == (3, 2)
    np.testing.assert_allclose(eager.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(eager, compiled, rtol=1e-4, atol=1e-5)
    assert model.get_layer(BACKBONE) is not None and model.get_layer(HEAD).units == 2


def test_paper_model_builds_from_params():
    model = build_model(ModelParams(architecture="monacnn", image_size=384), 2)
    assert model.output_shape == (None, 2)


def test_replace_head_keeps_backbone_weights_and_makes_a_new_head():
    params = ModelParams(architecture="compactcnn", image_size=32, width=0.25)
    parent = build_model(params, 2)
    child = replace_head(parent, params, 2)
    for old, new in zip(parent.get_layer(BACKBONE).weights, child.get_layer(BACKBONE).weights):
        np.testing.assert_array_equal(old.numpy(), new.numpy())
    assert not np.array_equal(parent.get_layer(HEAD).kernel.numpy(), child.get_layer(HEAD).kernel.numpy())


def test_head_stays_float32_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = build_model(ModelParams(architecture="compactcnn", image_size=32, width=0.25), 2)
        assert model.get_layer(BACKBONE).layers[2].compute_dtype == "bfloat16"
        assert model.get_layer(HEAD).compute_dtype == "float32"
        assert model(np.zeros((1, 32, 32, 3), "float32")).dtype == tf.float32
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_imagenet_weights_offline_fail_with_what_to_do(tmp_path, monkeypatch):
    """The real Keras download path, on a machine that cannot reach it (this one, and CI)."""
    from mona_pipeline.models import WeightsUnavailable

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # no cached weights
    with pytest.raises(WeightsUnavailable, match="model.weights: none.*~/.keras/models"):
        build_model(ModelParams(architecture="mobilenetv3small", image_size=32, weights="imagenet"))


def test_imagenet_weights_for_a_network_without_them_is_a_params_error():
    with pytest.raises(ValueError, match="weights: imagenet exists only for mobilenetv3small, efficientnetv2b0"):
        ModelParams(architecture="monacnn", weights="imagenet")


def test_the_same_seed_builds_the_same_network_while_other_threads_draw_from_random():
    """Prefect's threads share Python's `random` with Keras' default layer seeds; keras_seeds isolates them."""
    import hashlib
    import random
    import threading
    import time

    import keras

    from mona_pipeline.models import keras_seeds

    def build(seed: int) -> str:
        stop = threading.Event()

        def draw_meanwhile():
            while not stop.is_set():
                random.random()
                time.sleep(0.0002)

        thread = threading.Thread(target=draw_meanwhile, daemon=True)
        keras.utils.set_random_seed(7)
        thread.start()
        try:
            with keras_seeds(seed):
                model = build_model(ModelParams(architecture="mobilenetv3small", image_size=32, width=0.25))
        finally:
            stop.set()
            thread.join()
        keras.backend.clear_session()
        return hashlib.sha256(b"".join(w.tobytes() for w in model.get_weights())).hexdigest()

    assert build(42) == build(42) == build(42)
    assert build(43) != build(42)


def test_saving_the_same_model_twice_gives_the_same_bytes_and_it_loads(tmp_path, monkeypatch):
    """A DVC output's hash is its bytes: Keras's save time must not reach them (issue 9)."""
    import hashlib
    import time as clock

    from mona_pipeline.trained import MODEL_FILE, ModelMetadata, load_trained, save_trained

    metadata = ModelMetadata(stage="target", class_names=["mona", "others"], positive_class="mona",
                             image_size=32, threshold=0.95)
    keras.mixed_precision.set_global_policy("mixed_bfloat16")  # what training uses on this CPU
    try:
        network = build_model(ModelParams(architecture="compactcnn", image_size=32, width=0.25), 2)
        weights = network.get_weights()
        save_trained(network, metadata, tmp_path / "a")
        clock.sleep(2.1)  # zip timestamps have 2-second steps
        keras.backend.clear_session()  # as in a new process: layer names restart, objects live elsewhere
        keras.mixed_precision.set_global_policy("mixed_bfloat16")  # (clear_session resets it)
        network = build_model(ModelParams(architecture="compactcnn", image_size=32, width=0.25), 2)
        network.set_weights(weights)
        save_trained(network, metadata, tmp_path / "b")
    finally:
        keras.mixed_precision.set_global_policy("float32")
    for name in (MODEL_FILE, "metadata.json"):
        assert hashlib.sha256((tmp_path / "a" / name).read_bytes()).digest() == \
            hashlib.sha256((tmp_path / "b" / name).read_bytes()).digest(), name
    loaded = load_trained(tmp_path / "b")
    for left, right in zip(network.get_weights(), loaded.network.get_weights()):
        np.testing.assert_array_equal(left, right)


def test_metadata_written_before_reproducible_folders_still_loads():
    from mona_pipeline.trained import ModelMetadata

    old = ModelMetadata.model_validate({"stage": "target", "class_names": ["mona", "others"], "positive_class": "mona",
                                        "image_size": 32, "threshold": 0.95, "train_seconds": 12.5})
    assert old.stage == "target" and "train_seconds" not in old.model_dump()
