"""The architectures a run can name, per task, with the input sizes each accepts.

This module imports no TensorFlow, so the command line can list the choices and check `--size` at once; the
builders load with their modules.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Architecture:
    """A buildable architecture: `builder` is `module:function`, called with (input_shape, classes)."""

    name: str
    task: str
    builder: str
    summary: str
    min_size: int
    multiple_of: int = 1
    backbone: bool = False  # a keras.applications base: takes --weights and --fine-tune-epochs
    one_object: bool = False  # classification + localisation: one box per image, trained on one object each

    def size_problem(self, size: int) -> str | None:
        """Why `size` cannot be this architecture's input side, or None when it can."""
        if size < self.min_size:
            return f"{self.name} needs --size of at least {self.min_size}, not {size}"
        if size % self.multiple_of:
            return f"{self.name} needs --size to be a multiple of {self.multiple_of}, not {size}"
        return None

    def build(self, input_shape: tuple[int, int, int], classes: int, **options: Any) -> Any:
        module, function = self.builder.split(":")
        if self.backbone:
            options["backbone"] = self.name
        return getattr(importlib.import_module(f"training.architectures.{module}"), function)(
            input_shape, classes, **options
        )


def _backbone(name: str, summary: str, min_size: int = 32) -> Architecture:
    return Architecture(
        name, "classify", "applications:backbone_classifier", summary, min_size, backbone=True
    )


ARCHITECTURES: tuple[Architecture, ...] = (
    Architecture("lenet5", "classify", "classic:lenet5", "LeNet-5 (LeCun 1998)", 28),
    Architecture(
        "course_cifar",
        "classify",
        "classic:course_cifar",
        "the course's CIFAR CNN (Conv 64, Conv 32, Dense 80)",
        8,
    ),
    Architecture("small_cnn", "classify", "classic:small_cnn", "a CIFAR-style CNN with BatchNorm", 8),
    Architecture("resnet34", "classify", "resnet:resnet34", "ResNet-34 of residual units", 32),
    Architecture("unet_encoder", "classify", "segmentation:unet_encoder_classifier", "the U-Net encoder", 8),
    _backbone("xception", "keras.applications Xception", min_size=71),
    _backbone("mobilenet", "keras.applications MobileNet"),
    _backbone("mobilenet_v2", "keras.applications MobileNetV2"),
    _backbone("resnet50", "keras.applications ResNet50"),
    _backbone("efficientnet_b0", "keras.applications EfficientNetB0"),
    _backbone("densenet121", "keras.applications DenseNet121"),
    Architecture("grid", "detect", "yolo:grid_detector", "a YOLO-style grid detector", 16, multiple_of=16),
    Architecture("encoder_grid", "detect", "yolo:encoder_grid_detector", "the U-Net encoder, grid head", 8),
    Architecture(
        "localize",
        "detect",
        "localize:localizer",
        "one object: a softmax head and a box head (K = 1)",
        32,
        one_object=True,
    ),
    Architecture(
        "encoder_localize",
        "detect",
        "localize:encoder_localizer",
        "the U-Net encoder, localize's heads",
        8,
        one_object=True,
    ),
    Architecture("fcn", "segment", "segmentation:fcn", "the course's FCN", 8, multiple_of=8),
    Architecture("unet", "segment", "segmentation:unet", "a small U-Net", 8, multiple_of=8),
)
DEFAULT_ARCH = {"classify": "small_cnn", "detect": "grid", "segment": "unet"}
DIGITS_ARCH = "lenet5"


class UnknownArchitectureError(ValueError):
    """An --arch that the task does not offer, said in one line with the choices."""


def names(task: str) -> list[str]:
    return [arch.name for arch in ARCHITECTURES if arch.task == task]


def architecture(task: str, name: str) -> Architecture:
    """The architecture `name` of `task`; UnknownArchitectureError lists the task's choices."""
    for arch in ARCHITECTURES:
        if arch.task == task and arch.name == name:
            return arch
    raise UnknownArchitectureError(
        f"{task} has no architecture {name!r}; choose from {', '.join(names(task))}"
    )
