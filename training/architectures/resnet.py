"""ResNet-34 built from a `ResidualUnit` layer (He et al. 2015, as in Géron's Hands-On ML)."""

from __future__ import annotations

from typing import Any

import keras
from keras import layers


@keras.saving.register_keras_serializable(package="training")
class ResidualUnit(layers.Layer):
    """Two 3x3 conv + BN and a skip connection; a strided 1x1 conv projects the skip when shapes change."""

    def __init__(self, filters: int, strides: int = 1, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.filters = filters
        self.strides = strides
        self.main = [
            layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False),
            layers.BatchNormalization(),
            layers.ReLU(),
            layers.Conv2D(filters, 3, padding="same", use_bias=False),
            layers.BatchNormalization(),
        ]
        self.skip = []
        if strides > 1:
            self.skip = [
                layers.Conv2D(filters, 1, strides=strides, use_bias=False),
                layers.BatchNormalization(),
            ]

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        x = inputs
        for layer in self.main:
            x = layer(x, training=training) if isinstance(layer, layers.BatchNormalization) else layer(x)
        skip = inputs
        for layer in self.skip:
            skip = (
                layer(skip, training=training)
                if isinstance(layer, layers.BatchNormalization)
                else layer(skip)
            )
        return keras.ops.relu(x + skip)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "filters": self.filters, "strides": self.strides}


def resnet34(input_shape: tuple[int, int, int] = (64, 64, 3), classes: int = 6) -> keras.Model:
    """ResNet-34: a 7x7 stem, then 3, 4, 6, 3 residual units of 64, 128, 256, 512 filters."""
    inputs = keras.Input(input_shape, name="image")
    x = layers.Rescaling(1 / 255)(inputs)
    x = layers.Conv2D(64, 7, strides=2, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
    previous = 64
    for filters in [64] * 3 + [128] * 4 + [256] * 6 + [512] * 3:
        x = ResidualUnit(filters, strides=1 if filters == previous else 2)(x)
        previous = filters
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="resnet34")
