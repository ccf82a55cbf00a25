"""The bundled models and real data for them: where they are, and scikit-learn's digits as they are served."""

from __future__ import annotations

import numpy as np
from conftest import REPO_ROOT, encode
from PIL import Image
from scipy import ndimage
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


EXAMPLES = REPO_ROOT / "docs" / "examples"


def example_shapes(name: str) -> dict[str, np.ndarray]:
    """The shapes in docs/examples/`name`, picked out by colour: {class: pixel mask}. In shapes.jpg the star
    and the cross are pink (left and middle) and the hexagon nearly black; in star.jpg the star is green."""
    pixels = np.asarray(Image.open(EXAMPLES / name).convert("RGB")).astype(int)
    red, green, blue = pixels[..., 0], pixels[..., 1], pixels[..., 2]
    columns = np.arange(pixels.shape[1])[None, :]
    if name == "star.jpg":
        return {"star": _largest_blob((green > 170) & (red < 120) & (blue < 170))}
    pink = (red > 200) & (green < 170) & (blue > 100) & (blue < 230)
    return {
        "star": _largest_blob(pink & (columns < 35)),
        "cross": _largest_blob(pink & (columns >= 35) & (columns < 80)),
        "hexagon": _largest_blob((pixels.sum(-1) < 120) & (columns >= 80)),
    }


def _largest_blob(mask: np.ndarray) -> np.ndarray:
    """The mask's largest 8-connected part: the shape, without stray pixels of its colour elsewhere."""
    parts, count = ndimage.label(mask, structure=np.ones((3, 3)))
    sizes = ndimage.sum(mask, parts, range(1, count + 1))
    return parts == 1 + int(np.argmax(sizes))


def extent(mask: np.ndarray) -> tuple[int, int, int, int]:
    """The box (x_min, y_min, x_max, y_max) in pixel edges around a mask's pixels."""
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1
