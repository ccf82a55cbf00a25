"""Transfer learning on keras.applications backbones; their own preprocessing goes inside the graph.

Weights are never downloaded (training.architectures.weights says where they are read from).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
from keras import layers

from training.architectures.weights import weights_file
from training.errors import WeightsError

BASE_NAME = "base"


@keras.saving.register_keras_serializable(package="training")
class CaffePreprocess(layers.Layer):
    """`preprocess_input` of the caffe-style backbones (ResNet50): RGB -> BGR, minus the ImageNet means."""

    MEAN_BGR = (103.939, 116.779, 123.68)

    def call(self, inputs: Any) -> Any:
        bgr = keras.ops.flip(inputs, axis=-1)
        return bgr - keras.ops.convert_to_tensor(self.MEAN_BGR, dtype=inputs.dtype)


@keras.saving.register_keras_serializable(package="training")
class TorchPreprocess(layers.Layer):
    """`preprocess_input` of torch-style backbones (DenseNet): 0..1, less ImageNet means, over their SDs."""

    MEAN = (0.485, 0.456, 0.406)
    STD = (0.229, 0.224, 0.225)

    def call(self, inputs: Any) -> Any:
        mean = keras.ops.convert_to_tensor(self.MEAN, dtype=inputs.dtype)
        std = keras.ops.convert_to_tensor(self.STD, dtype=inputs.dtype)
        return (inputs / 255.0 - mean) / std


def _tf_style(x: keras.KerasTensor) -> keras.KerasTensor:
    return layers.Rescaling(1 / 127.5, offset=-1.0)(x)


def _caffe_style(x: keras.KerasTensor) -> keras.KerasTensor:
    return CaffePreprocess()(x)


def _torch_style(x: keras.KerasTensor) -> keras.KerasTensor:
    return TorchPreprocess()(x)


def _none(x: keras.KerasTensor) -> keras.KerasTensor:
    return x


Preprocess = Callable[[keras.KerasTensor], keras.KerasTensor]
# name -> (constructor, in-graph preprocessing). EfficientNet rescales inside its own graph.
BACKBONES: dict[str, tuple[Callable[..., keras.Model], Preprocess]] = {
    "xception": (keras.applications.Xception, _tf_style),
    "mobilenet": (keras.applications.MobileNet, _tf_style),
    "mobilenet_v2": (keras.applications.MobileNetV2, _tf_style),
    "resnet50": (keras.applications.ResNet50, _caffe_style),
    "efficientnet_b0": (keras.applications.EfficientNetB0, _none),
    "densenet121": (keras.applications.DenseNet121, _torch_style),
}


def backbone_classifier(
    input_shape: tuple[int, int, int],
    classes: int,
    backbone: str,
    weights: str | None = None,
    dropout: float = 0.2,
) -> keras.Model:
    """A backbone (from scratch by default; 'imagenet' or a weights file on disk) with a new softmax head.

    A pre-trained base keeps its BatchNorm in inference mode even when unfrozen, as Keras's fine-tuning
    guide advises: its ImageNet statistics are better than a few small batches'.
    """
    constructor, preprocess = BACKBONES[backbone]
    base = constructor(include_top=False, weights=None, input_shape=input_shape, name=BASE_NAME)
    if weights is not None:
        path = weights_file(backbone, weights, input_shape[0])
        try:
            base.load_weights(path)
        except (ValueError, OSError) as exc:
            raise WeightsError(
                f"{path} does not fit the {backbone} base: {str(exc).splitlines()[0]}"
            ) from None
    inputs = keras.Input(input_shape, name="image")
    x = base(preprocess(inputs), training=False if weights is not None else None)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name=f"{backbone}_classifier")


def base_of(model: keras.Model) -> keras.Model | None:
    """The keras.applications base inside a backbone classifier, or None for other models."""
    try:
        layer = model.get_layer(BASE_NAME)
    except ValueError:
        return None
    return layer if isinstance(layer, keras.Model) else None
