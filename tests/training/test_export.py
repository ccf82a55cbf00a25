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

from service.api.terms import InputSpec
from service.core.contract import ModelMetadata
from training.errors import ExportMismatchError
from training.evaluate.evaluate import DEFINITIONS
from training.export import MAX_ABS_DIFF, check_against_keras, model_card, to_onnx


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


LOCALISER_METRICS = {
    "accuracy": 0.93,
    "box_iou": 0.71,
    "map50": 0.88,
    "mean_iou": 0.65,
    "ap50_per_class": {"circle": 0.9, "square": 0.86},
    "score_threshold": 0.25,
    "nms_iou": 0.45,
    "batchnorm": {"inference_map50": 0.88, "batch_statistics_map50": 0.87},
    "dataset": "oxford-layout:scenes",
    "split": "test",
    "images": 40,
    "onnx_max_abs_diff": 1e-6,
}
SEGMENTER_METRICS = {"miou": 0.7, "pixel_accuracy": 0.9, "iou_per_class": {"pet": 0.7}, "images": 8}
INT8_METRICS = {
    "fp32_accuracy": 0.9,
    "accuracy_change": -0.01,
    "quantization": "QDQ",
    "calibration_images": 8,
}


@pytest.mark.parametrize("found", [LOCALISER_METRICS, SEGMENTER_METRICS, INT8_METRICS])
def test_every_metric_on_the_card_is_defined_in_one_line(found: dict[str, object]) -> None:
    run = {
        "config": {"arch": "localize", "seed": 0, "batch": 8, "learning_rate": 0.001, "patience": 4},
        "epochs_run": 1,
        "weights_epoch": 1,
        "train_images": 100,
        "val_images": 10,
        "dataset": "oxford-layout:scenes",
        "train_seconds": 3.0,
    }
    metadata = ModelMetadata(
        schema_version="1",
        task="detect",
        name="card",
        version=1,
        labels=("circle", "square"),
        input=InputSpec(name="image", height=32, width=32, channels=3),
        resize="stretch",
        outputs={"boxes": "boxes", "iou": "iou", "class_probabilities": "class_probabilities"},
        metrics=found,
    )
    card = model_card(metadata, run, int8=False)
    rows = [
        line
        for line in card.splitlines()
        if line.startswith("| ") and not line.startswith(("| metric", "| ---"))
    ]
    flat = [key for key, value in found.items() if not isinstance(value, dict)]
    assert [row.split(" | ")[0][2:] for row in rows] == flat
    assert all(row.split(" | ")[2].strip(" |") for row in rows), rows
    for key in (key for key, value in found.items() if isinstance(value, dict)):
        assert f"- {key}: " in card
        assert f"({DEFINITIONS[key]})" in card
    assert "1 epoch (" in card
    augmented = model_card(metadata, {**run, "augmentation": "horizontal flips"}, int8=False)
    assert "Training images augmented with horizontal flips." in augmented
    assert "![augmentation](augment.png)" in augmented
    plain = model_card(metadata, {**run, "augmentation": "none"}, int8=False)
    assert "Training images not augmented." in plain
    assert "augment.png" not in plain
