"""Real images for the load, pre-encoded as JPEG once: synthetic scenes from `training synth`, else photos."""

from __future__ import annotations

import io
import logging
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

logger = logging.getLogger("benchmarks.images")

UPLOAD_SIZE = (640, 480)
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


def synthetic_scenes(count: int, seed: int) -> list[Image.Image]:
    """Scenes like the bundled models' training data, from `python -m training synth`; [] if unavailable."""
    with tempfile.TemporaryDirectory(prefix="bench-synth-") as tmp:
        command = [sys.executable, "-m", "training", "synth", "--out", tmp, "--count", str(count)]
        command += ["--seed", str(seed), "--max-objects", "3"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
        paths = sorted(Path(tmp).rglob("images/*.jpg"))
        if done.returncode != 0 or not paths:
            logger.warning("training synth unavailable (%s); using sample photos", done.stderr.strip()[-200:])
            return []
        return [Image.open(path).convert("RGB") for path in paths[:count]]


def sample_photos() -> list[Image.Image]:
    """scikit-image's bundled sample photos (shipped inside the package, nothing downloaded)."""
    from skimage import data

    photos = []
    for name in PHOTO_NAMES:
        pixels = np.asarray(getattr(data, name)())
        if pixels.ndim == 2:
            pixels = np.stack([pixels] * 3, axis=-1)
        photos.append(Image.fromarray(pixels[..., :3].astype(np.uint8)))
    return photos


def upload_set(count: int = 32, seed: int = 7) -> tuple[list[bytes], str]:
    """`count` JPEGs of UPLOAD_SIZE (a phone-camera preview) and where they came from."""
    scenes = synthetic_scenes(count, seed)
    source = "synthetic scenes (`python -m training synth`)"
    if not scenes:
        scenes = sample_photos()
        source = "scikit-image sample photos"
    return [encode_jpeg(scene.resize(UPLOAD_SIZE, Image.Resampling.BICUBIC)) for scene in scenes], source


def big_jpeg() -> bytes:
    """A 4000x3000 (12 MP) JPEG: a sample photo upscaled, as a phone would upload it."""
    from skimage import data

    photo = Image.fromarray(data.chelsea())
    return encode_jpeg(photo.resize(BIG_SIZE, Image.Resampling.BICUBIC), quality=92)
