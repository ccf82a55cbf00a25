"""Real images for the load, pre-encoded as JPEG once: photos at a phone preview's size and as thumbnails."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

UPLOAD_SIZE = (640, 480)
THUMB_SIZE = (160, 120)
BIG_SIZE = (4000, 3000)
PHOTO_NAMES = (
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
)


def encode_jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def sample_photos() -> list[Image.Image]:
    """Real photographs shipped inside scikit-image and scikit-learn (nothing downloaded)."""
    from skimage import data
    from sklearn.datasets import load_sample_images

    photos = [Image.fromarray(pixels) for pixels in load_sample_images().images]
    for name in PHOTO_NAMES:
        pixels = np.asarray(getattr(data, name)())
        if pixels.ndim == 2:
            pixels = np.stack([pixels] * 3, axis=-1)
        photos.append(Image.fromarray(pixels[..., :3].astype(np.uint8)))
    return photos


def upload_set() -> tuple[list[bytes], str]:
    """Photos as a phone-camera preview sends them (UPLOAD_SIZE JPEGs), and where they came from. Photos, not
    the synthetic scenes the bundled models learnt from: their decoding costs what real uploads cost."""
    photos = sample_photos()
    source = (
        "photos shipped with scikit-learn (china, flower) and scikit-image (" + ", ".join(PHOTO_NAMES) + ")"
    )
    return [encode_jpeg(photo.resize(UPLOAD_SIZE, Image.Resampling.BICUBIC)) for photo in photos], source


def thumbnails(jpegs: list[bytes]) -> list[bytes]:
    """The same scenes at THUMB_SIZE, as a gallery or a video pipeline would send them."""
    return [
        encode_jpeg(Image.open(io.BytesIO(jpeg)).resize(THUMB_SIZE, Image.Resampling.BICUBIC))
        for jpeg in jpegs
    ]


def big_jpeg() -> bytes:
    """A 4000x3000 (12 MP) JPEG: a sample photo upscaled, as a phone would upload it."""
    from skimage import data

    photo = Image.fromarray(data.chelsea())
    return encode_jpeg(photo.resize(BIG_SIZE, Image.Resampling.BICUBIC), quality=92)
