"""Keras architectures: classic CNNs, ResNet-34, keras.applications backbones, YOLO-style grid, FCN, U-Net."""

from __future__ import annotations

from collections.abc import Callable

import keras

from training.architectures.applications import BACKBONES, backbone_classifier
from training.architectures.classic import lenet5, small_cnn
from training.architectures.resnet import resnet34
from training.architectures.segmentation import fcn, unet, unet_encoder_classifier
from training.architectures.yolo import encoder_grid_detector, grid_detector

Builder = Callable[..., keras.Model]

CLASSIFIERS: dict[str, Builder] = {
    "lenet5": lenet5,
    "small_cnn": small_cnn,
    "resnet34": resnet34,
    "unet_encoder": unet_encoder_classifier,
}
DETECTORS: dict[str, Builder] = {"grid": grid_detector, "encoder_grid": encoder_grid_detector}
SEGMENTERS: dict[str, Builder] = {"fcn": fcn, "unet": unet}


def classifier_names() -> list[str]:
    return [*CLASSIFIERS, *BACKBONES]


def build_classifier(
    arch: str, input_shape: tuple[int, int, int], classes: int, weights: str | None = None
) -> keras.Model:
    """A classifier by name; keras.applications backbones accept `weights` ('imagenet' or a file path)."""
    if arch in BACKBONES:
        return backbone_classifier(arch, input_shape, classes, weights=weights)
    if arch not in CLASSIFIERS:
        raise ValueError(f"unknown classifier {arch!r}; choose from {classifier_names()}")
    return CLASSIFIERS[arch](input_shape, classes)
