"""LeNet-5, the course's CIFAR CNN and a small CIFAR-style CNN; all take raw 0..255 pixels and rescale inside
the graph."""

from __future__ import annotations

import keras
from keras import layers


def lenet5(input_shape: tuple[int, int, int] = (32, 32, 1), classes: int = 10) -> keras.Model:
    """LeCun et al. 1998: two conv + average-pool stages, a 120-map conv, then 84 units and a softmax.

    Dropout before each dense layer is the one addition: on 1,300 training digits the net otherwise overfits.
    """
    inputs = keras.Input(input_shape, name="image")
    x = layers.Rescaling(1 / 255)(inputs)
    x = layers.Conv2D(6, 5, activation="tanh", padding="same" if input_shape[0] < 32 else "valid")(x)
    x = layers.AveragePooling2D(2)(x)
    x = layers.Conv2D(16, 5, activation="tanh")(x)
    x = layers.AveragePooling2D(2)(x)
    x = layers.Conv2D(120, 5, activation="tanh")(x)
    x = layers.Dropout(0.3)(layers.Flatten()(x))
    x = layers.Dropout(0.3)(layers.Dense(84, activation="tanh")(x))
    outputs = layers.Dense(classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="lenet5")


def course_cifar(input_shape: tuple[int, int, int] = (32, 32, 3), classes: int = 10) -> keras.Model:
    """The course notes' CIFAR-10 CNN as they write it: Conv 64 -> MaxPool -> Conv 32 -> Flatten -> Dense 80
    -> softmax (3x3 ReLU convolutions, 2x2 pooling)."""
    inputs = keras.Input(input_shape, name="image")
    x = layers.Rescaling(1 / 255)(inputs)
    x = layers.Conv2D(64, 3, activation="relu")(x)
    x = layers.MaxPooling2D(2)(x)
    x = layers.Conv2D(32, 3, activation="relu")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(80, activation="relu")(x)
    outputs = layers.Dense(classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="course_cifar")


def conv_bn(x: keras.KerasTensor, filters: int, strides: int = 1, kernel: int = 3) -> keras.KerasTensor:
    """Conv -> BatchNorm -> ReLU, the building block every small model here shares."""
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    return layers.ReLU()(x)


def small_cnn(input_shape: tuple[int, int, int] = (64, 64, 3), classes: int = 6) -> keras.Model:
    """A CIFAR-style CNN: pooled stem, two conv pairs with pooling, a wide conv, global max pooling, softmax.

    Global max (not average) pooling: a shape is told by whether some corner or curve is present anywhere.
    """
    inputs = keras.Input(input_shape, name="image")
    x = layers.Rescaling(1 / 255)(inputs)
    x = conv_bn(x, 16)
    x = layers.MaxPooling2D(2)(x)
    for filters in (32, 64):
        x = conv_bn(x, filters)
        x = conv_bn(x, filters)
        x = layers.MaxPooling2D(2)(x)
    x = conv_bn(x, 128)
    x = layers.GlobalMaxPooling2D()(x)
    x = layers.Dropout(0.2)(x)
    outputs = layers.Dense(classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="small_cnn")
