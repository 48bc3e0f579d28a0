"""The networks: the paper's MonaCNN, and efficient keras.applications backbones.

Every model is `inputs -> backbone -> head`: `backbone` is a sub-model named
"backbone" that maps (B, S, S, 3) float pixels in [0, 255] to features; `head`
is the float32 softmax layer. Transfer between stages keeps the backbone and
replaces the head (`replace_head`).

    model = build_model(ModelParams(architecture="monacnn", image_size=512), num_classes=2)

A trained stage on disk (its metadata, saving and loading) is trained.py's.
"""

from __future__ import annotations

import random
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import keras
from keras import layers

from mona_pipeline.config import ModelParams
from mona_pipeline.errors import UserError

BACKBONE, HEAD = "backbone", "head"


@dataclass(frozen=True)
class MonaCNNConfig:
    """The paper's network. Defaults are its numbers; tests shrink them."""

    image_size: int = 512
    filters: tuple[int, ...] = (3, 64, 128, 256, 512, 1024, 2048)
    dense_units: tuple[int, ...] = (2048, 1024)
    dropout: float = 0.3

    def feature_size(self) -> int:
        """Side of the last feature map: each block is a valid 3x3 conv (-2) then 2x2 pooling (/2)."""
        size = self.image_size
        for _ in self.filters:
            size = (size - 2) // 2
        return size


def build_monacnn_backbone(config: MonaCNNConfig) -> keras.Model:
    """(B, S, S, 3) in [0, 255] -> (B, dense_units[-1]); at 512 the conv stack ends at (B, 2, 2, 2048)."""
    if config.feature_size() < 1:
        raise ModelSizeError(f"monacnn with {len(config.filters)} blocks needs a larger input than "
                         f"{config.image_size}x{config.image_size} (the feature map would vanish)")
    inputs = keras.Input((config.image_size, config.image_size, 3))
    x = layers.Rescaling(1.0 / 255.0)(inputs)  # the paper scales [0, 255] to [0, 1]
    for filters in config.filters:
        x = layers.Conv2D(filters, 3, activation="relu")(x)  # valid padding: S -> S - 2
        x = layers.MaxPooling2D(2)(x)  # S -> S // 2
    x = layers.Flatten()(x)  # (B, 2 * 2 * 2048) at 512
    for units in config.dense_units:
        x = layers.Dense(units, activation="relu")(x)
        x = layers.Dropout(config.dropout)(x)
    return keras.Model(inputs, x, name=BACKBONE)


def build_compact_backbone(image_size: int, width: float) -> keras.Model:
    """A small VGG-style network for little data and modest machines.

    A stride-2 stem, then three blocks of two 3x3 conv + batch norm + ReLU and 2x2 pooling,
    then global average pooling: (B, S, S, 3) in [0, 255] -> (B, 256 * width). At S = 128 the
    blocks run at 64, 32 and 16 pixels: ~0.2 GFLOPs a picture.
    """
    def conv_bn_relu(x, filters: int, strides: int = 1):
        x = layers.Conv2D(max(8, int(filters * width)), 3, strides=strides, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization(momentum=0.9)(x)
        return layers.ReLU()(x)

    inputs = keras.Input((image_size, image_size, 3))
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0)(inputs)
    x = conv_bn_relu(x, 32, strides=2)  # S -> S / 2
    for filters in (64, 128, 256):
        x = conv_bn_relu(x, filters)
        x = conv_bn_relu(x, filters)
        x = layers.MaxPooling2D(2)(x)  # S / 2 -> S / 4 -> S / 8 -> S / 16
    x = layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, x, name=BACKBONE)


class ModelSizeError(UserError, ValueError):
    """The network cannot be built at this input size."""


class WeightsUnavailable(UserError, RuntimeError):
    """Pretrained weights were asked for and cannot be downloaded; the message says what to do."""


def build_applications_backbone(architecture: str, image_size: int, width: float, weights: str) -> keras.Model:
    """A keras.applications network without its top, global-average pooled; it rescales its own input.

    Raises:
        WeightsUnavailable: `weights="imagenet"` on a machine that cannot download them.
    """
    shape = (image_size, image_size, 3)
    weights_arg = None if weights == "none" else weights
    try:
        with warnings.catch_warnings():
            # Keras warns when ImageNet weights made at 224 px load at another input size: by design here, the
            # networks are convolutional and pooled, so they take any size.
            warnings.filterwarnings("ignore", message="`input_shape` is undefined or non-square", category=UserWarning)
            network = _application(architecture, shape, width, weights_arg)
    except Exception as error:  # keras.utils.get_file raises a bare Exception("URL fetch failure ...")
        if "URL fetch failure" not in str(error):
            raise
        raise WeightsUnavailable(
            f"model.weights is 'imagenet' but the {architecture} ImageNet weights cannot be downloaded here "
            f"({error}). Either set model.weights: none in params.yaml (train from scratch, as the demo does), "
            f"or run once where the internet is reachable: Keras keeps the file in ~/.keras/models/, and a copy "
            f"of that folder makes this machine work offline.") from None
    # keras.applications use BatchNorm momentum 0.999, tuned for ImageNet's million steps; on a few
    # hundred steps the moving statistics used at inference never settle. 0.9 settles in ~50 steps.
    for layer in network.layers:
        if isinstance(layer, layers.BatchNormalization):
            layer.momentum = 0.9
    inputs = keras.Input(shape)
    return keras.Model(inputs, network(inputs), name=BACKBONE)


@contextmanager
def keras_seeds(seed: int) -> Iterator[None]:
    """Build or load models here for the same weights from the same seed, whatever other threads do.

    Keras gives each initializer and dropout layer created without a seed a default one drawn from Python's
    global `random` (keras.src.random.seed_generator.make_default_seed). Any other thread drawing from it
    meanwhile (Prefect's workers in a flow run) shifts those draws, and the same seed builds another network
    (measured: one thread calling random.random() during build_model gave other weights every time). Inside
    this block Keras draws from a private generator seeded with `seed` instead.
    """
    # keras.src: Keras has no public way to seed the default seeds it gives unseeded layers; this module
    # attribute is where `make_default_seed` draws from (checked against keras 3.15).
    from keras.src.random import seed_generator

    shared = seed_generator.python_random
    seed_generator.python_random = random.Random(seed)
    try:
        yield
    finally:
        seed_generator.python_random = shared


def build_backbone(params: ModelParams) -> keras.Model:
    if params.architecture == "monacnn":
        return build_monacnn_backbone(MonaCNNConfig(image_size=params.image_size, dropout=params.dropout))
    if params.architecture == "compactcnn":
        return build_compact_backbone(params.image_size, params.width)
    return build_applications_backbone(params.architecture, params.image_size, params.width, params.weights)


def attach_head(backbone: keras.Model, num_classes: int, dropout: float, name: str = "model") -> keras.Model:
    """backbone -> dropout -> Dense softmax. The head stays float32 under mixed precision (stable softmax)."""
    inputs = keras.Input(backbone.input_shape[1:])
    features = backbone(inputs)
    features = layers.Dropout(dropout)(features)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name=HEAD)(features)
    return keras.Model(inputs, outputs, name=name)


def build_model(params: ModelParams, num_classes: int = 2, backbone: keras.Model | None = None,
                name: str = "model") -> keras.Model:
    """Build a classifier; with `backbone`, reuse it (transfer) instead of a fresh one.

    Args:
        params: architecture, input size, width, weights, dropout.
        num_classes: size of the softmax.
    Returns:
        a model taking (B, S, S, 3) float pixels in [0, 255], giving (B, num_classes) float32 probabilities.
    """
    if backbone is None:
        backbone = build_backbone(params)
    # The paper's dense layers already end in dropout; the applications' pooled features get it here.
    dropout = 0.0 if params.architecture == "monacnn" else params.dropout
    return attach_head(backbone, num_classes, dropout, name=name)


def replace_head(model: keras.Model, params: ModelParams, num_classes: int = 2, name: str = "model") -> keras.Model:
    """A new model with `model`'s backbone (weights kept, shared) and a freshly initialised head."""
    return build_model(params, num_classes, backbone=model.get_layer(BACKBONE), name=name)


def _application(architecture: str, shape: tuple[int, int, int], width: float, weights: str | None) -> keras.Model:
    if architecture == "mobilenetv3small":
        return keras.applications.MobileNetV3Small(
            input_shape=shape, alpha=width, include_top=False, weights=weights, pooling="avg",
            include_preprocessing=True, minimalistic=False)
    if architecture == "efficientnetv2b0":
        return keras.applications.EfficientNetV2B0(
            input_shape=shape, include_top=False, weights=weights, pooling="avg", include_preprocessing=True)
    raise ValueError(f"unknown architecture {architecture!r}; allowed: compactcnn, mobilenetv3small, efficientnetv2b0, "
                     f"monacnn")

