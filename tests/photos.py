"""Data sets of real photos, made from scikit-image's sample photos cropped, flipped and lit at random:
a folder per class, and single-object scenes (a photo pasted on a background, its box in VOC XML) in the
Oxford-IIIT Pet layout.

`python tests/photos.py OUT --per-class 60` writes the set the small-data BatchNorm figures were measured on;
`python tests/photos.py OUT --scenes 1000` the one the localisation figures were.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
import skimage.data
from PIL import Image, ImageEnhance

from training.data.oxford import write_list_files, write_voc_xml

# Colour photos that ship with scikit-image (no download); each becomes one class.
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")
SIDE = 96


def photo_crop(photo: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A random square crop of 45-90 % of the shorter side, maybe mirrored, brightness within 25 %."""
    short = min(photo.size)
    side = int(short * rng.uniform(0.45, 0.9))
    left = int(rng.integers(0, photo.width - side + 1))
    top = int(rng.integers(0, photo.height - side + 1))
    crop = photo.crop((left, top, left + side, top + side)).resize((SIDE, SIDE), Image.Resampling.BILINEAR)
    if rng.random() < 0.5:
        crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return ImageEnhance.Brightness(crop).enhance(float(rng.uniform(0.75, 1.25)))


def write_photo_folders(
    root: Path, per_class: int, seed: int = 0, classes: tuple[str, ...] = PHOTOS, suffix: str = ".jpg"
) -> Path:
    """`root/<photo>/<i>.jpg` for each photo; returns root."""
    rng = np.random.default_rng(seed)
    for name in classes:
        photo = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            photo_crop(photo, rng).save(folder / f"{index}{suffix}", quality=90)
    return root


def scene(photo: Image.Image, rng: np.random.Generator) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """A crop of `photo` pasted at a random place and size on a noisy two-colour gradient; returns the
    image and the pasted box (x_min, y_min, x_max, y_max)."""
    width, height = (int(v) for v in rng.integers(120, 145, size=2))
    top, bottom = rng.integers(0, 256, size=(2, 3)).astype(np.float32)
    t = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    pixels = np.broadcast_to(top * (1 - t) + bottom * t, (height, width, 3)) + rng.normal(
        0, 6, (height, width, 3)
    )
    canvas = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    side = min(width, height) * rng.uniform(0.35, 0.7)
    w, h = (max(8, int(side * rng.uniform(0.8, 1.25))) for _ in range(2))
    w, h = min(w, width), min(h, height)
    x, y = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
    canvas.paste(photo_crop(photo, rng).resize((w, h), Image.Resampling.BILINEAR), (x, y))
    return canvas, (x, y, x + w - 1, y + h - 1)


def write_photo_scenes(root: Path, count: int, seed: int = 0, classes: tuple[str, ...] = PHOTOS) -> Path:
    """`count` single-object scenes in the Oxford-IIIT Pet layout (images, VOC boxes, list files, a fifth
    held out for test); returns root."""
    rng = np.random.default_rng(seed)
    photos = [Image.fromarray(getattr(skimage.data, name)()).convert("RGB") for name in classes]
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / "xmls").mkdir(parents=True, exist_ok=True)
    entries = []
    for index in range(count):
        label = index % len(classes)
        stem = f"{classes[label]}_{index // len(classes) + 1}"
        image, box = scene(photos[label], rng)
        image.save(root / "images" / f"{stem}.jpg", quality=90)
        write_voc_xml(
            root / "annotations" / "xmls" / f"{stem}.xml",
            f"{stem}.jpg",
            image.size,
            [(classes[label], box, False, False)],
        )
        entries.append((stem, label + 1))
    test = set(rng.choice(count, size=max(1, count // 5), replace=False).tolist())
    write_list_files(root, classes, entries, test)
    return root


# Every photo scikit-image and scikit-learn ship (no download), colour and grey: nothing like synth's shapes.
UNLIKE = (
    "astronaut",
    "brick",
    "camera",
    "cat",
    "cell",
    "chelsea",
    "clock",
    "coffee",
    "coins",
    "colorwheel",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "moon",
    "page",
    "retina",
    "rocket",
    "text",
)


def unlike_photos(count: int, seed: int = 0) -> list[bytes]:
    """`count` JPEGs unlike the training data: the shipped photos whole or cropped (a fifth to all of each
    side, any aspect), shown at 64 to 640 pixels on the longer side."""
    from sklearn.datasets import load_sample_images

    photos = [Image.fromarray(getattr(skimage.data, name)()).convert("RGB") for name in UNLIKE]
    photos += [Image.fromarray(image) for image in load_sample_images().images]
    rng = np.random.default_rng(seed)
    uploads = []
    for index in range(count):
        photo = photos[index % len(photos)]
        whole = index < len(photos)
        width = photo.width if whole else int(photo.width * rng.uniform(0.2, 1))
        height = photo.height if whole else int(photo.height * rng.uniform(0.2, 1))
        left, top = (
            int(rng.integers(0, photo.width - width + 1)),
            int(rng.integers(0, photo.height - height + 1)),
        )
        crop = photo.crop((left, top, left + width, top + height))
        longer = int(rng.integers(64, 641))
        scale = longer / max(crop.size)
        shown = crop.resize((max(1, round(crop.width * scale)), max(1, round(crop.height * scale))))
        buffer = io.BytesIO()
        shown.save(buffer, format="JPEG", quality=90)
        uploads.append(buffer.getvalue())
    return uploads


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--per-class", type=int, default=60)
    parser.add_argument("--scenes", type=int, default=0, help="write this many single-object scenes instead")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.scenes:
        print(write_photo_scenes(args.out, args.scenes, args.seed))
    else:
        print(write_photo_folders(args.out, args.per_class, args.seed))
