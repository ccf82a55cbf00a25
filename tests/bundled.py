"""The bundled models and real data for them: where they are, and scikit-learn's digits as they are served."""

from __future__ import annotations

import numpy as np
from conftest import REPO_ROOT, encode
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from service.core.imaging import ImageLimits, prepare_image

MODELS_DIR = REPO_ROOT / "models"
DIGITS_SIZE = 32
_LIMITS = ImageLimits(max_bytes=1 << 20, max_pixels=1 << 20)


def held_out_digits() -> tuple[np.ndarray, np.ndarray]:
    """The digits test split exactly as the trainer draws it (stratified, 20 %, seed 0)."""
    digits = load_digits()
    index = np.arange(len(digits.target))
    _, test = train_test_split(index, test_size=0.2, random_state=0, stratify=digits.target)
    return digits.images[test], digits.target[test]


def digit_png(pixels: np.ndarray) -> bytes:
    """An 8x8 digit (0..16) as the greyscale PNG a client would upload."""
    return encode(Image.fromarray((pixels * (255 / 16)).round().astype(np.uint8), "L"), "PNG")


def served_pixels(png: bytes, size: int, channels: int) -> np.ndarray:
    """The float32 [size, size, channels] tensor the service makes of `png` for a stretch model."""
    prepared = prepare_image(
        png, width=size, height=size, channels=channels, resize="stretch", limits=_LIMITS
    )
    return prepared.pixels
