"""Class activation maps (Zhou et al. 2016): a classifier whose head is global pooling then one dense layer
explains itself with one more output, its last convolution's features times the dense weights.

Under global average pooling the map's mean over the cells is the class's logit less its bias, so the map is
exact. Under global max pooling (`small_cnn`, the bundled classifier) the same product is the map of
Oquab et al. 2015: each feature counts where it fires, and the logit takes each feature's peak.
"""

from __future__ import annotations

import keras
import numpy as np

POOLINGS = (keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D)
HEAD_NAME = "probabilities"  # every classifier here names its softmax layer so
HEATMAP = "heatmap"


def cam_head(model: keras.Model) -> tuple[keras.KerasTensor, keras.layers.Dense] | None:
    """The features a global-pooling + dense head pools (dropout between them allowed) and that dense layer,
    or None when the head has another shape."""
    try:
        dense = model.get_layer(HEAD_NAME)
    except ValueError:
        return None
    if not isinstance(dense, keras.layers.Dense):
        return None
    layer = _producer(dense.input)
    while isinstance(layer, keras.layers.Dropout):
        layer = _producer(layer.input)
    if not isinstance(layer, POOLINGS) or len(layer.input.shape) != 4:
        return None
    return layer.input, dense


def _producer(tensor: keras.KerasTensor) -> keras.layers.Layer:
    return tensor._keras_history.operation


def heatmap_output(model: keras.Model) -> keras.KerasTensor | None:
    """The model's class activation maps [N, h, w, classes] as a tensor of its graph, or None when it cannot
    explain: one matmul of the pooled features by the dense kernel, bias left out."""
    head = cam_head(model)
    if head is None:
        return None
    features, dense = head
    cam = keras.layers.Dense(dense.units, use_bias=False, name=HEATMAP)
    maps = cam(features)
    cam.set_weights([dense.get_weights()[0]])
    return maps


def class_activation_maps(model: keras.Model, images: np.ndarray) -> np.ndarray:
    """The maps computed directly: the features from Keras, then their product with the dense kernel in
    NumPy (what the exported `heatmap` output must equal)."""
    head = cam_head(model)
    if head is None:
        raise ValueError(f"{model.name} has no global-pooling and dense head to explain with")
    features, dense = head
    values = np.asarray(keras.Model(model.input, features)(images, training=False), dtype=np.float64)
    return values @ np.asarray(dense.get_weights()[0], dtype=np.float64)
