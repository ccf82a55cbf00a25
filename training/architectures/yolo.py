"""A YOLO-style fully convolutional grid detector, decoded inside the graph to the contract's outputs.

Each grid cell predicts one box (centre offset in the cell, width and height relative to the image), a
confidence trained against the real IoU of its own box with the object whose centre falls in the cell (zero
elsewhere), and class probabilities. Training and export share `DecodeGrid`; export only splits its output
into named tensors.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers, ops

from training.architectures.classic import conv_bn

BOX, IOU = slice(0, 4), 4
EPS = 1e-7


@keras.saving.register_keras_serializable(package="training")
class DecodeGrid(layers.Layer):
    """Raw head [N, S, S, 5 + C] -> [N, S*S, 5 + C]: x_min, y_min, x_max, y_max (0..1), IoU, class probs."""

    def call(self, raw: Any) -> Any:
        rows, cols = raw.shape[1], raw.shape[2]
        col = ops.reshape(ops.cast(ops.arange(cols), raw.dtype), (1, 1, cols))
        row = ops.reshape(ops.cast(ops.arange(rows), raw.dtype), (1, rows, 1))
        cx = (ops.sigmoid(raw[..., 0]) + col) / cols
        cy = (ops.sigmoid(raw[..., 1]) + row) / rows
        half_w = ops.sigmoid(raw[..., 2]) / 2
        half_h = ops.sigmoid(raw[..., 3]) / 2
        corners = ops.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=-1)
        boxes = ops.clip(corners, 0.0, 1.0)
        iou = ops.sigmoid(raw[..., 4:5])
        probs = ops.softmax(raw[..., 5:], axis=-1)
        decoded = ops.concatenate([boxes, iou, probs], axis=-1)
        return ops.reshape(decoded, (-1, rows * cols, decoded.shape[-1]))


@keras.saving.register_keras_serializable(package="training")
class SplitDetections(layers.Layer):
    """Decoded [N, K, 5 + C] -> the contract's boxes [N, K, 4], iou [N, K], class_probabilities [N, K, C]."""

    def call(self, decoded: Any) -> dict[str, Any]:
        return {
            "boxes": decoded[..., BOX],
            "iou": decoded[..., IOU],
            "class_probabilities": decoded[..., 5:],
        }


def grid_detector(
    input_shape: tuple[int, int, int] = (96, 96, 3), classes: int = 6, width: int = 96
) -> keras.Model:
    """Conv backbone down to stride 8, two 3x3 convs for context, a 1x1 head of 5 + C numbers per cell."""
    inputs = keras.Input(input_shape, name="image")
    x = layers.Rescaling(1 / 255)(inputs)
    x = conv_bn(x, 16)
    x = conv_bn(x, 24, strides=2)
    x = conv_bn(x, 32, strides=2)
    x = conv_bn(x, 32)
    x = conv_bn(x, 64, strides=2)
    x = conv_bn(x, 64)
    fine = x
    x = conv_bn(x, width, strides=2)
    x = conv_bn(x, width)
    x = layers.UpSampling2D(2)(x)
    x = layers.Concatenate()([x, fine])
    x = conv_bn(x, width)
    raw = layers.Conv2D(5 + classes, 1, name="head")(x)
    return keras.Model(inputs, DecodeGrid(name="detections")(raw), name="grid_detector")


def encoder_grid_detector(
    input_shape: tuple[int, int, int] = (96, 96, 3), classes: int = 6, base: int = 16
) -> keras.Model:
    """The U-Net encoder (stride 8, so it can start from a segmenter's weights) with the grid head."""
    from training.architectures.segmentation import unet_encoder

    inputs = keras.Input(input_shape, name="image")
    x, _ = unet_encoder(layers.Rescaling(1 / 255)(inputs), base)
    x = conv_bn(x, base * 8)
    raw = layers.Conv2D(5 + classes, 1, name="head")(x)
    return keras.Model(inputs, DecodeGrid(name="detections")(raw), name="encoder_grid_detector")


def aligned_iou(a: Any, b: Any, generalized: bool = False) -> Any:
    """IoU (or GIoU) of matching boxes [..., 4] -> [...]."""
    inter_w = ops.maximum(ops.minimum(a[..., 2], b[..., 2]) - ops.maximum(a[..., 0], b[..., 0]), 0.0)
    inter_h = ops.maximum(ops.minimum(a[..., 3], b[..., 3]) - ops.maximum(a[..., 1], b[..., 1]), 0.0)
    inter = inter_w * inter_h
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = area_a + area_b - inter
    iou = inter / (union + EPS)
    if not generalized:
        return iou
    hull_w = ops.maximum(a[..., 2], b[..., 2]) - ops.minimum(a[..., 0], b[..., 0])
    hull_h = ops.maximum(a[..., 3], b[..., 3]) - ops.minimum(a[..., 1], b[..., 1])
    hull = hull_w * hull_h
    return iou - (hull - union) / (hull + EPS)


@keras.saving.register_keras_serializable(package="training")
class GridDetectionLoss(keras.losses.Loss):
    """YOLO loss on decoded cells; y_true [N, K, 5 + C]: object flag, x_min, y_min, x_max, y_max, one-hot."""

    def __init__(self, coord_weight: float = 5.0, noobj_weight: float = 0.5, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.coord_weight = coord_weight
        self.noobj_weight = noobj_weight

    def call(self, y_true: Any, y_pred: Any) -> Any:
        obj = y_true[..., 0]
        true_box, pred_box = y_true[..., 1:5], y_pred[..., BOX]
        giou = aligned_iou(pred_box, true_box, generalized=True)
        l1 = ops.sum(ops.abs(pred_box - true_box), axis=-1)
        coord = obj * (1.0 - giou + 2.0 * l1)
        # The confidence target is the real IoU of the cell's own box, a constant for this step as in YOLO.
        target = ops.stop_gradient(aligned_iou(pred_box, true_box)) * obj
        pred_iou = ops.clip(y_pred[..., IOU], EPS, 1 - EPS)
        bce = -(target * ops.log(pred_iou) + (1 - target) * ops.log(1 - pred_iou))
        conf = bce * (obj + self.noobj_weight * (1 - obj))
        cls = -obj * ops.sum(y_true[..., 5:] * ops.log(ops.clip(y_pred[..., 5:], EPS, 1.0)), axis=-1)
        return ops.sum(self.coord_weight * coord + conf + cls, axis=-1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "coord_weight": self.coord_weight, "noobj_weight": self.noobj_weight}
