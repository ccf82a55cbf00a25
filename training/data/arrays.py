"""Decode a split once into numpy arrays at the model's input size: Oxford-IIIT Pet records, or labelled
files of the folder-per-class layout (where a file that will not decode is skipped with a warning)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from service.core.errors import ServiceError
from service.core.imaging import ImageLimits, exif_orientation, prepare_image, upright
from training.data.folders import LabelledFile
from training.data.oxford import OxfordDataset, Record, object_class, read_voc_xml

logger = logging.getLogger("training.data")

MAX_BOXES = 8
# Training data is trusted and local: the limits only guard against a corrupt file, not a hostile upload.
TRAINING_IMAGE_LIMITS = ImageLimits(max_bytes=1 << 30, max_pixels=1 << 30)


@dataclass(frozen=True)
class ArraySet:
    """Images [N, H, W, C] float32 0..255 and labels [N]; where the task has them, boxes [N, M, 4] normalised
    with classes [N, M] (-1 pads) and masks [N, H, W] (trimap value - 1)."""

    images: np.ndarray
    labels: np.ndarray
    boxes: np.ndarray | None = None
    box_classes: np.ndarray | None = None
    masks: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, index: np.ndarray) -> ArraySet:
        pick = {name: None if value is None else value[index] for name, value in vars(self).items()}
        return replace(self, **pick)


def load_image(path: Path, size: tuple[int, int], channels: int = 3) -> np.ndarray:
    """Decode and stretch-resize exactly as the service does (JPEG draft mode included): float32 [H, W, C]."""
    prepared = prepare_image(
        path.read_bytes(),
        width=size[1],
        height=size[0],
        channels=channels,
        resize="stretch",
        limits=TRAINING_IMAGE_LIMITS,
    )
    return prepared.pixels


def decode_all(
    paths: Sequence[Path], size: tuple[int, int], channels: int, name: str
) -> tuple[np.ndarray, list[int]]:
    """Decode with a progress bar: the images [N, H, W, C] and the indices of `paths` they came from. A
    file that will not decode is skipped with a warning that names it."""
    images: list[np.ndarray] = []
    kept: list[int] = []
    for index, path in enumerate(
        tqdm(paths, desc=f"decoding {name}", unit="image", leave=False, disable=None)
    ):
        try:
            images.append(load_image(path, size, channels))
        except (ServiceError, OSError) as exc:
            logger.warning("skipped %s: %s", path, getattr(exc, "message", exc))
            continue
        kept.append(index)
    return (np.stack(images) if images else np.zeros((0, *size, channels), np.float32)), kept


def load_labelled(
    files: Sequence[LabelledFile], size: tuple[int, int], channels: int = 3, name: str = "images"
) -> tuple[ArraySet, list[Path]]:
    """Decode `files`; those that will not decode are skipped (and returned)."""
    images, kept = decode_all([file.path for file in files], size, channels, name)
    labels = np.array([files[i].label for i in kept], np.int32)
    return ArraySet(images=images, labels=labels), _left_out([file.path for file in files], kept)


def _left_out(paths: Sequence[Path], kept: Sequence[int]) -> list[Path]:
    chosen = set(kept)
    return [path for index, path in enumerate(paths) if index not in chosen]


def upright_box(box: tuple[float, float, float, float], orientation: int) -> tuple[float, ...]:
    """A normalised (x1, y1, x2, y2) box on the stored pixels -> the same box on the upright photo."""
    # Where the stored corners land is read off the service turning a 2x2 image of corner numbers (0 top-left,
    # 1 top-right, 2 bottom-left) as it turns the photo, so the 8 orientations are written down only there.
    corners = Image.fromarray(np.array([[0, 1], [2, 3]], np.uint8))
    turned = np.asarray(upright(corners, orientation))
    origin, x_end, y_end = (np.argwhere(turned == corner)[0][::-1] for corner in (0, 1, 2))
    x1, y1, x2, y2 = box
    (ax, ay), (bx, by) = (
        origin + x * (x_end - origin) + y * (y_end - origin) for x, y in ((x1, y1), (x2, y2))
    )
    return float(min(ax, bx)), float(min(ay, by)), float(max(ax, bx)), float(max(ay, by))


def _stored_size_and_orientation(path: Path) -> tuple[tuple[int, int], int]:
    with Image.open(path) as image:
        return image.size, exif_orientation(image)


def _boxes(record: Record, dataset: OxfordDataset) -> tuple[np.ndarray, np.ndarray]:
    boxes = np.zeros((MAX_BOXES, 4), np.float32)
    labels = np.full(MAX_BOXES, -1, np.int32)
    if record.xml is None:
        return boxes, labels
    (width, height), orientation = _stored_size_and_orientation(record.image)
    for i, obj in enumerate(read_voc_xml(record.xml)[:MAX_BOXES]):
        x1, y1, x2, y2 = obj.box
        boxes[i] = upright_box((x1 / width, y1 / height, x2 / width, y2 / height), orientation)
        labels[i] = object_class(obj, record, dataset)
    return boxes, labels


def load_split(
    dataset: OxfordDataset, split: str, task: str, size: tuple[int, int], channels: int = 3
) -> tuple[ArraySet, list[Path]]:
    """The split's images with what `task` needs; records lacking that (XML, trimap) are left out, and
    images that will not decode are skipped (and returned)."""
    records = [
        r
        for r in dataset.split(split)
        if (task != "detect" or r.xml is not None) and (task != "segment" or r.trimap is not None)
    ]
    if not records:
        raise ValueError(f"{dataset.root}: no {split} images with the annotations {task!r} needs")
    paths = [r.image for r in records]
    images, kept = decode_all(paths, size, channels, split)
    if not kept:
        raise ValueError(f"{dataset.root}: none of the {split} images decodes")
    records = [records[i] for i in kept]
    labels = np.array([dataset.label(r) for r in records], np.int32)
    result = ArraySet(images=images, labels=labels)
    if task == "detect":
        pairs = [_boxes(r, dataset) for r in records]
        result = replace(
            result, boxes=np.stack([b for b, _ in pairs]), box_classes=np.stack([c for _, c in pairs])
        )
    if task == "segment":
        masks = [_trimap(r, size) for r in records]
        result = replace(result, masks=np.stack(masks))
    return result, _left_out(paths, kept)


def _trimap(record: Record, size: tuple[int, int]) -> np.ndarray:
    _, orientation = _stored_size_and_orientation(record.image)
    with Image.open(record.trimap) as trimap:  # type: ignore[arg-type]
        turned = upright(trimap.convert("L"), orientation)
        resized = turned.resize(size[::-1], Image.Resampling.NEAREST)
        return np.clip(np.asarray(resized, np.int32) - 1, 0, 2).astype(np.uint8)


def train_val_split(data: ArraySet, val_fraction: float, seed: int) -> tuple[ArraySet, ArraySet]:
    """Seeded split of trainval into training and validation (early stopping); test stays untouched."""
    order = np.random.default_rng(seed).permutation(len(data))
    n_val = max(1, round(len(data) * val_fraction))
    return data.subset(order[n_val:]), data.subset(order[:n_val])
