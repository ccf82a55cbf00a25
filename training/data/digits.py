"""scikit-learn's handwritten digits (real data shipped in the package) as 0..255 greyscale images."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import Image

from training.data.arrays import ArraySet

DIGIT_LABELS = tuple(str(d) for d in range(10))


def digit_to_image(pixels: np.ndarray, size: int) -> np.ndarray:
    """An 8x8 digit (0..16, ink bright) scaled to 0..255 and resized bilinearly to `size` x `size` x 1."""
    return np.asarray(_grey(pixels).resize((size, size), Image.Resampling.BILINEAR), np.float32)[..., None]


def load_digits_splits(size: int = 32, seed: int = 0, test_fraction: float = 0.2) -> dict[str, ArraySet]:
    """Stratified trainval / test split of the 1,797 digits, images resized to `size`."""
    digits, trainval, test = _split(seed, test_fraction)
    images = np.stack([digit_to_image(image, size) for image in digits.images])
    labels = digits.target.astype(np.int32)
    return {
        "trainval": ArraySet(images=images[trainval], labels=labels[trainval]),
        "test": ArraySet(images=images[test], labels=labels[test]),
    }


def held_out_digit_pngs(seed: int = 0, test_fraction: float = 0.2) -> list[bytes]:
    """The test split's 8x8 digits as the greyscale PNGs a client uploads."""
    digits, _, test = _split(seed, test_fraction)
    return [_png(_grey(pixels)) for pixels in digits.images[test]]


def _split(seed: int, test_fraction: float) -> tuple[Any, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    index = np.arange(len(digits.target))
    trainval, test = train_test_split(
        index, test_size=test_fraction, random_state=seed, stratify=digits.target
    )
    return digits, trainval, test


def _grey(pixels: np.ndarray) -> Image.Image:
    return Image.fromarray((np.asarray(pixels, np.float32) * (255 / 16)).round().astype(np.uint8), "L")


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
