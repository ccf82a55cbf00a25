"""Class activation maps through export: the ONNX `heatmap` is the pooled features times the dense kernel."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")

import keras
from keras import layers

from training.architectures.classic import course_cifar, lenet5, small_cnn
from training.cam import cam_head, class_activation_maps
from training.export import session_for, to_onnx
from training.train import contract_model

SIZE, CLASSES = 32, 4


def average_pooled() -> keras.Model:
    """Two convolutions, global average pooling, dropout and a softmax: the head CAM is exact for."""
    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    x = layers.Rescaling(1 / 255)(inputs)
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.Conv2D(16, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.2)(x)
    outputs = layers.Dense(CLASSES, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs)


def max_pooled() -> keras.Model:
    return small_cnn((SIZE, SIZE, 3), CLASSES)


def served_outputs(model: keras.Model, images: np.ndarray) -> dict[str, np.ndarray]:
    session = session_for(to_onnx(contract_model(model, "classify", heatmap=True)))
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(names, {"image": images}), strict=True))


@pytest.fixture
def images() -> np.ndarray:
    keras.utils.set_random_seed(0)
    return np.random.default_rng(0).uniform(0, 255, (4, SIZE, SIZE, 3)).astype(np.float32)


@pytest.mark.parametrize("build", [average_pooled, max_pooled], ids=["average pooling", "max pooling"])
def test_the_exported_heatmap_is_the_features_times_the_dense_kernel(build, images: np.ndarray) -> None:
    model = build()
    served = served_outputs(model, images)
    direct = class_activation_maps(model, images)
    assert served["heatmap"].shape == direct.shape
    assert direct.shape[0] == 4
    assert direct.shape[-1] == CLASSES
    assert np.abs(served["heatmap"] - direct).max() <= 1e-4
    assert np.abs(direct).max() > 1e-2  # not a map of zeros that any graph would match


def test_under_average_pooling_the_maps_mean_is_the_logit_less_its_bias(images: np.ndarray) -> None:
    model = average_pooled()
    served = served_outputs(model, images)
    bias = model.get_layer("probabilities").get_weights()[1]
    logits = served["heatmap"].mean(axis=(1, 2)) + bias
    softmax = np.exp(logits - logits.max(-1, keepdims=True))
    assert np.allclose(softmax / softmax.sum(-1, keepdims=True), served["probabilities"], atol=1e-6)


@pytest.mark.parametrize("build", [lenet5, course_cifar], ids=["lenet5", "course_cifar"])
def test_a_flattening_head_has_no_map(build) -> None:
    model = build()
    assert cam_head(model) is None
    assert set(contract_model(model, "classify", heatmap=True).output) == {"probabilities"}
