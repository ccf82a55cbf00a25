"""Model outputs -> answers: top-k, detection thresholding and NMS, trimap masks and their PNGs."""

from __future__ import annotations

import io
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from PIL import Image

from service.imaging import Geometry

TrimapStyle = Literal["mask", "color", "overlay"]

# Index = trimap value: 1 pet, 2 background, 3 border; 0 never occurs in a mask.
TRIMAP_COLORS = ((0, 0, 0), (230, 50, 50), (40, 60, 150), (255, 215, 0))
# Overlay opacity per value: the pet and its border stand out, the background is only tinted.
TRIMAP_OVERLAY_ALPHA = (0.0, 0.55, 0.3, 0.7)
PNG_COMPRESS_LEVEL = 1
# Masks are long runs of a few values: the run-length strategy about halves their size against zlib's
# default, at the same speed.
PNG_COMPRESS_STRATEGY = zlib.Z_RLE


@dataclass(frozen=True)
class Detection:
    """One object found: class, score (class probability x predicted IoU), and box in original pixels."""

    class_id: int
    label: str
    score: float
    iou: float
    box: tuple[float, float, float, float]


def top_k(probabilities: np.ndarray, labels: Sequence[str], k: int) -> list[tuple[int, str, float]]:
    """The k most probable (class_id, label, probability), best first; ties go to the lower class id."""
    probabilities = np.asarray(probabilities).reshape(-1)
    _check_labels(len(probabilities), labels)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    order = np.argsort(-probabilities, kind="stable")[:k]
    return [(int(index), labels[index], float(probabilities[index])) for index in order]


def detect(
    boxes: np.ndarray,
    iou: np.ndarray,
    class_probabilities: np.ndarray,
    labels: Sequence[str],
    geometry: Geometry,
    *,
    score_threshold: float,
    iou_threshold: float,
    max_detections: int,
) -> list[Detection]:
    """One image's candidates ([K,4], [K], [K,C]) -> detections best first, after per-class NMS."""
    boxes, iou, class_probabilities = _check_detector_outputs(boxes, iou, class_probabilities)
    _check_labels(class_probabilities.shape[1], labels)
    class_ids = class_probabilities.argmax(axis=1)
    scores = class_probabilities.max(axis=1) * iou
    candidates = np.flatnonzero(scores >= score_threshold)
    if not candidates.size:
        return []
    ranked = candidates[np.argsort(-scores[candidates], kind="stable")]
    pixel_boxes = geometry.boxes_to_original(boxes[ranked])
    areas = _areas(pixel_boxes)
    solid = areas > 0
    ranked, pixel_boxes, areas = ranked[solid], pixel_boxes[solid], areas[solid]
    kept = non_max_suppression(pixel_boxes, areas, class_ids[ranked], iou_threshold, max_detections)
    # Whole columns to Python at once: indexing NumPy scalars one by one costs a call each.
    found = ranked[kept]
    return [
        Detection(class_id=class_id, label=labels[class_id], score=score, iou=predicted, box=tuple(box))
        for class_id, score, predicted, box in zip(
            class_ids[found].tolist(),
            scores[found].tolist(),
            iou[found].tolist(),
            pixel_boxes[kept].tolist(),
            strict=True,
        )
    ]


def non_max_suppression(
    boxes: np.ndarray, areas: np.ndarray, class_ids: np.ndarray, iou_threshold: float, limit: int
) -> list[int]:
    """Greedy per-class NMS over boxes sorted best first: a box is dropped when its IoU with a kept box
    of the same class is above `iou_threshold`. Returns the kept indices, at most `limit`."""
    alive = np.ones(len(boxes), dtype=bool)
    kept: list[int] = []
    for index in range(len(boxes)):
        if len(kept) >= limit:
            break
        if not alive[index]:
            continue
        kept.append(index)
        # Compared with every box, not only the later ones: one vector op each instead of index bookkeeping;
        # earlier boxes are already decided, so what this does to them is never read.
        overlap = _iou_one_to_many(boxes[index], areas[index], boxes, areas)
        alive &= ~((overlap > iou_threshold) & (class_ids == class_ids[index]))
    return kept


def trimap(probabilities: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Segmenter probabilities [H, W, 3] -> uint8 trimap (1 pet, 2 background, 3 border) at original size."""
    probabilities = np.asarray(probabilities)
    if probabilities.ndim != 3 or probabilities.shape[2] != 3:
        raise ValueError(f"probabilities must have shape [H, W, 3], got {list(probabilities.shape)}")
    mask = (np.argmax(probabilities, axis=2) + 1).astype(np.uint8)
    left, top, right, bottom = _mask_content_region(geometry, mask.shape[1], mask.shape[0])
    content = Image.fromarray(np.ascontiguousarray(mask[top:bottom, left:right]))
    size = (geometry.original_width, geometry.original_height)
    return np.array(content.resize(size, Image.Resampling.NEAREST))


def render_trimap_png(mask: np.ndarray, style: TrimapStyle, original: Image.Image | None = None) -> bytes:
    """A trimap as PNG: values 1..3 (`mask`), coloured (`color`) or coloured over the photo (`overlay`)."""
    mask = np.ascontiguousarray(mask, dtype=np.uint8)
    if mask.ndim != 2:
        raise ValueError(f"mask must have shape [H, W], got {list(mask.shape)}")
    values = Image.fromarray(mask)
    if style == "mask":
        picture = values
    elif style == "color":
        # A palette PNG looks the same as RGB in any viewer, and encodes ~10x faster in fewer bytes.
        picture = _palette_image(values)
    elif style == "overlay":
        picture = _overlay(values, original)
    else:
        raise ValueError(f"unknown style {style!r}; expected 'mask', 'color' or 'overlay'")
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL, compress_type=PNG_COMPRESS_STRATEGY)
    return buffer.getvalue()


def class_fractions(mask: np.ndarray, labels: Sequence[str]) -> dict[str, float]:
    """Fraction of the mask's pixels per label (value i + 1 is labels[i]); sums to 1."""
    flat = np.asarray(mask).reshape(-1)
    if flat.size == 0:
        raise ValueError("the mask is empty")
    counts = np.bincount(flat, minlength=len(labels) + 1)
    if counts[0] or len(counts) > len(labels) + 1:
        raise ValueError(f"mask values must be 1..{len(labels)}")
    return {label: float(counts[index + 1]) / flat.size for index, label in enumerate(labels)}


def _check_labels(classes: int, labels: Sequence[str]) -> None:
    if classes != len(labels):
        raise ValueError(f"the model gives {classes} classes but has {len(labels)} labels")


def _check_detector_outputs(
    boxes: np.ndarray, iou: np.ndarray, class_probabilities: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    boxes = np.asarray(boxes, dtype=np.float64)
    iou = np.asarray(iou, dtype=np.float64).reshape(-1)
    class_probabilities = np.asarray(class_probabilities, dtype=np.float64)
    count = len(iou)
    if boxes.shape != (count, 4) or class_probabilities.ndim != 2 or len(class_probabilities) != count:
        raise ValueError(
            "detector outputs must be boxes [K, 4], iou [K], class_probabilities [K, C]; got "
            f"{list(boxes.shape)}, {list(np.shape(iou))}, {list(class_probabilities.shape)}"
        )
    return boxes, iou, class_probabilities


# np.maximum rather than np.clip below: clip's Python wrappers cost ~9 us a call, several per box per request.
def _areas(boxes: np.ndarray) -> np.ndarray:
    return np.maximum(boxes[:, 2] - boxes[:, 0], 0.0) * np.maximum(boxes[:, 3] - boxes[:, 1], 0.0)


def _iou_one_to_many(box: np.ndarray, area: float, others: np.ndarray, other_areas: np.ndarray) -> np.ndarray:
    width = np.maximum(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]), 0.0)
    height = np.maximum(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]), 0.0)
    intersection = width * height
    return intersection / (area + other_areas - intersection)


def _mask_content_region(geometry: Geometry, mask_width: int, mask_height: int) -> tuple[int, int, int, int]:
    """The content region scaled to the mask, for segmenters whose output is smaller than their input."""
    left, top, right, bottom = geometry.content_region()
    if (mask_width, mask_height) == (geometry.input_width, geometry.input_height):
        return left, top, right, bottom
    sx, sy = mask_width / geometry.input_width, mask_height / geometry.input_height
    right_px, bottom_px = (
        max(round(right * sx), round(left * sx) + 1),
        max(round(bottom * sy), round(top * sy) + 1),
    )
    return round(left * sx), round(top * sy), right_px, bottom_px


def _palette_image(values: Image.Image) -> Image.Image:
    indexed = values.copy()
    indexed.putpalette([channel for color in TRIMAP_COLORS for channel in color])
    return indexed


def _colorize(values: Image.Image) -> Image.Image:
    return _palette_image(values).convert("RGB")


def _overlay(values: Image.Image, original: Image.Image | None) -> Image.Image:
    if original is None:
        raise ValueError("style 'overlay' needs the original image")
    if original.size != values.size:
        raise ValueError(f"the original is {original.size} but the mask is {values.size}")
    alpha_lut = [round(255 * a) for a in TRIMAP_OVERLAY_ALPHA] + [0] * (256 - len(TRIMAP_OVERLAY_ALPHA))
    photo = original if original.mode == "RGB" else original.convert("RGB")
    return Image.composite(_colorize(values), photo, values.point(alpha_lut))
