"""Classification + localisation (the course's recipe): one object per image, a softmax head and a box head.

The outputs are laid out as the grid detector's decoded cells with a single cell, [N, 1, 5 + C]: box corners,
a predicted IoU, class probabilities. So it exports as a contract `detect` model with K = 1 and `/detect`
serves it unchanged.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import layers, ops

from training.architectures.classic import conv_bn
from training.architectures.yolo import BOX, EPS, IOU, aligned_iou

CLASS_WEIGHT, BOX_WEIGHT = 0.8, 0.2  # the course's loss weights


@keras.saving.register_keras_serializable(package="training")
class OneBox(layers.Layer):
    """(centre x, centre y, width, height) in 0..1, IoU, class probabilities -> one cell [N, 1, 5 + C]."""

    def call(self, box: Any, iou: Any, probabilities: Any) -> Any:
        half = box[..., 2:] / 2
        corners = ops.clip(ops.concatenate([box[..., :2] - half, box[..., :2] + half], axis=-1), 0.0, 1.0)
        return ops.expand_dims(ops.concatenate([corners, iou, probabilities], axis=-1), 1)


def localizer(input_shape: tuple[int, int, int] = (64, 64, 3), classes: int = 6) -> keras.Model:
    """Conv stages to stride 16, then the class and box heads."""
    inputs = keras.Input(input_shape, name="image")
    x = layers.Rescaling(1 / 255)(inputs)
    x = conv_bn(x, 16)
    for filters in (32, 64, 96, 128):
        x = layers.MaxPooling2D(2, padding="same")(x)
        x = conv_bn(x, filters)
        x = conv_bn(x, filters)
    return keras.Model(inputs, one_box_heads(x, classes), name="localizer")


def encoder_localizer(
    input_shape: tuple[int, int, int] = (64, 64, 3), classes: int = 6, base: int = 16
) -> keras.Model:
    """The U-Net encoder (stride 8) with the class and box heads: it can start from a segmenter's weights."""
    from training.architectures.segmentation import unet_encoder

    inputs = keras.Input(input_shape, name="image")
    x, _ = unet_encoder(layers.Rescaling(1 / 255)(inputs), base)
    return keras.Model(inputs, one_box_heads(x, classes), name="encoder_localizer")


def one_box_heads(features: keras.KerasTensor, classes: int) -> keras.KerasTensor:
    """The class head pools globally; the box head reads the whole narrowed map, since global pooling throws
    away where things are."""
    pooled = layers.Dropout(0.2)(layers.GlobalMaxPooling2D()(features))
    probabilities = layers.Dense(classes, activation="softmax", name="class_head")(pooled)
    where = layers.Flatten()(conv_bn(features, 16, kernel=1))
    where = layers.Dense(128, activation="relu")(layers.Concatenate()([where, pooled]))
    box = layers.Dense(4, activation="sigmoid", name="box_head")(where)
    iou = layers.Dense(1, activation="sigmoid", name="iou_head")(where)
    return OneBox(name="detections")(box, iou, probabilities)


@keras.saving.register_keras_serializable(package="training")
class LocalizationLoss(keras.losses.Loss):
    """Weighted class cross-entropy and box loss (1 - GIoU + L1), plus the IoU head's cross-entropy.

    y_true is the single-cell grid target [N, 1, 5 + C]: object flag, x_min, y_min, x_max, y_max, one-hot.
    """

    def __init__(
        self, class_weight: float = CLASS_WEIGHT, box_weight: float = BOX_WEIGHT, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.class_weight = class_weight
        self.box_weight = box_weight

    def call(self, y_true: Any, y_pred: Any) -> Any:
        true_box, pred_box = y_true[..., 1:5], y_pred[..., BOX]
        box = 1.0 - aligned_iou(pred_box, true_box, generalized=True)
        box += ops.sum(ops.abs(pred_box - true_box), axis=-1)
        cls = -ops.sum(y_true[..., 5:] * ops.log(ops.clip(y_pred[..., 5:], EPS, 1.0)), axis=-1)
        target = ops.stop_gradient(aligned_iou(pred_box, true_box))
        pred_iou = ops.clip(y_pred[..., IOU], EPS, 1 - EPS)
        conf = -(target * ops.log(pred_iou) + (1 - target) * ops.log(1 - pred_iou))
        return ops.sum(self.class_weight * cls + self.box_weight * box + conf, axis=-1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "class_weight": self.class_weight, "box_weight": self.box_weight}
