"""Transfer learning on keras.applications backbones; their own preprocessing goes inside the graph."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
from keras import layers


@keras.saving.register_keras_serializable(package="training")
class CaffePreprocess(layers.Layer):
    """`preprocess_input` of the caffe-style backbones (ResNet50): RGB -> BGR, minus the ImageNet means."""

    MEAN_BGR = (103.939, 116.779, 123.68)

    def call(self, inputs: Any) -> Any:
        bgr = keras.ops.flip(inputs, axis=-1)
        return bgr - keras.ops.convert_to_tensor(self.MEAN_BGR, dtype=inputs.dtype)


def _tf_style(x: keras.KerasTensor) -> keras.KerasTensor:
    return layers.Rescaling(1 / 127.5, offset=-1.0)(x)


def _caffe_style(x: keras.KerasTensor) -> keras.KerasTensor:
    return CaffePreprocess()(x)


def _none(x: keras.KerasTensor) -> keras.KerasTensor:
    return x


# name -> (constructor, in-graph preprocessing). EfficientNet rescales inside its own graph.
BACKBONES: dict[str, tuple[Callable[..., keras.Model], Callable[[keras.KerasTensor], keras.KerasTensor]]] = {
    "xception": (keras.applications.Xception, _tf_style),
    "mobilenet": (keras.applications.MobileNet, _tf_style),
    "mobilenet_v2": (keras.applications.MobileNetV2, _tf_style),
    "resnet50": (keras.applications.ResNet50, _caffe_style),
    "efficientnet_b0": (keras.applications.EfficientNetB0, _none),
}


def backbone_classifier(
    name: str,
    input_shape: tuple[int, int, int],
    classes: int,
    weights: str | None = None,
    dropout: float = 0.2,
) -> keras.Model:
    """A backbone (from scratch by default; 'imagenet' or a weights file on disk) with a new softmax head."""
    constructor, preprocess = BACKBONES[name]
    if weights not in (None, "imagenet") and not Path(weights).is_file():
        raise FileNotFoundError(f"weights file {weights} does not exist")
    inputs = keras.Input(input_shape, name="image")
    base = constructor(
        include_top=False, weights=None if weights is None else weights, input_shape=input_shape
    )
    x = base(preprocess(inputs))
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=f"{name}_classifier")
