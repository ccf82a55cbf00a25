"""Where a backbone's pre-trained weights are read from: never downloaded, found on disk or refused at once.

`--weights imagenet` reads the file keras.applications would have cached (include_top=False), and any other
value is a weights file of the base. No TensorFlow here, so the command line checks before it loads.
"""

from __future__ import annotations

import os
from pathlib import Path

from training.errors import WeightsError


def _mobilenet(size: int) -> str:
    return f"mobilenet_1_0_{size if size in (128, 160, 192, 224) else 224}_tf_no_top.h5"


def _mobilenet_v2(size: int) -> str:
    rows = size if size in (96, 128, 160, 192, 224) else 224
    return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{rows}_no_top.h5"


def imagenet_file(backbone: str, size: int) -> str:
    """The name Keras caches a backbone's ImageNet weights under; MobileNets have one per input side."""
    if backbone == "mobilenet":
        return _mobilenet(size)
    if backbone == "mobilenet_v2":
        return _mobilenet_v2(size)
    if backbone == "efficientnet_b0":
        return "efficientnetb0_notop.h5"
    return f"{backbone}_weights_tf_dim_ordering_tf_kernels_notop.h5"


def keras_cache() -> Path:
    """Where Keras caches downloaded weights: $KERAS_HOME/models, else ~/.keras/models."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "models"


def weights_file(backbone: str, weights: str, size: int) -> Path:
    """The file `--weights` names; WeightsError says which file is missing and where it belongs."""
    if weights == "imagenet":
        path = keras_cache() / imagenet_file(backbone, size)
        if not path.is_file():
            raise WeightsError(
                f"ImageNet weights for {backbone} are not on disk: put {path.name} (keras.applications, "
                f"include_top=False) in {path.parent}/, or pass --weights FILE"
            )
        return path
    path = Path(weights)
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    return path
