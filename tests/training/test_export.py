"""The export check: a faithful conversion passes, a wrong one is refused, and float32 rounding that the net
itself amplifies is not mistaken for a wrong one."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

pytest.importorskip("tensorflow")

import keras
import onnx
from onnx import numpy_helper

from training.errors import ExportMismatchError
from training.export import MAX_ABS_DIFF, check_against_keras, to_onnx


def images_around(centre: float, spread: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (centre + rng.uniform(-spread, spread, (16, 16, 16, 3))).astype(np.float32)


def normalised_classifier(images: np.ndarray) -> keras.Model:
    """Conv, average and a BatchNorm whose statistics are those of `images`, so that its logits are O(1)."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input(images.shape[1:], name="image")
    features = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3, use_bias=False)(inputs))
    norm = keras.layers.BatchNormalization(epsilon=1e-12)
    outputs = keras.layers.Dense(3, activation="softmax", name="probabilities")(norm(features))
    seen = np.asarray(keras.Model(inputs, features)(images))
    norm.moving_mean.assign(seen.mean(0))
    norm.moving_variance.assign(seen.var(0))
    return keras.Model(inputs, {"probabilities": outputs})


def with_conv_kernel(proto: onnx.ModelProto, change: Callable[[np.ndarray], np.ndarray]) -> onnx.ModelProto:
    """`proto` with its Conv kernel (the one 4-D initializer) replaced by `change` of it."""
    kernel = next(t for t in proto.graph.initializer if numpy_helper.to_array(t).ndim == 4)
    kernel.CopyFrom(numpy_helper.from_array(change(numpy_helper.to_array(kernel)), kernel.name))
    onnx.checker.check_model(proto)
    return proto


def test_a_faithful_conversion_passes_within_the_fixed_bound() -> None:
    images = images_around(128, 127)
    model = normalised_classifier(images)
    assert check_against_keras(to_onnx(model), model, images) <= MAX_ABS_DIFF


def test_a_conversion_with_a_weight_one_percent_off_is_refused() -> None:
    images = images_around(128, 127)
    model = normalised_classifier(images)
    proto = with_conv_kernel(to_onnx(model), lambda kernel: kernel * np.float32(1.01))
    with pytest.raises(ExportMismatchError, match="probabilities: ONNX differs from Keras"):
        check_against_keras(proto, model, images)


def test_rounding_the_net_amplifies_is_allowed() -> None:
    # Pixels 128 +- 1: the features are a large common part plus a small spread, which BatchNorm divides by,
    # as in ResNet50's last 1x1 maps at 32 px.
    images = images_around(128, 1)
    model = normalised_classifier(images)
    difference = check_against_keras(to_onnx(model), model, images)
    assert difference > MAX_ABS_DIFF, "the case must be one the fixed bound alone would refuse"


def test_a_conversion_that_answers_nan_is_refused() -> None:
    images = images_around(128, 127)
    model = normalised_classifier(images)
    proto = with_conv_kernel(to_onnx(model), lambda kernel: np.full_like(kernel, np.nan))
    with pytest.raises(ExportMismatchError, match="by nan"):
        check_against_keras(proto, model, images)
