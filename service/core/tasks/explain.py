"""Explanation: a classifier's class activation maps -> one class's heat over the image, as grid or picture.

The model's `heatmap` output holds, per feature-map cell and class, the last convolution's features times
that class's dense weights (docs/model-contract.md). A grid is one class's map over the image's content,
scaled to 0..1: a map says where, not how much, so only its shape is kept.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from service.api.options import ExplainOptions
from service.core.contract import ModelMetadata
from service.core.errors import CannotExplainError, UnknownLabelError, excerpt
from service.core.imaging import OVERLAY_MAX_SIDE, Geometry, PreparedImage
from service.core.tasks.classify import top_class_observation, top_k
from service.core.tasks.task import ImageSize, Observation, TaskSpec

# Heat 0 -> 1 as dark violet -> red -> yellow (inferno-like anchors): light and hue both rise with it, so
# it reads in grey as well.
HEAT_ANCHORS = ((0, 0, 4), (87, 16, 110), (188, 55, 84), (249, 142, 9), (252, 255, 164))
# The picture's opacity goes from the coldest to the hottest cell: the photo stays visible under the map.
HEAT_ALPHA = (0.15, 0.7)
PNG_COMPRESS_LEVEL = 1


def _heat_palette() -> list[int]:
    """256 RGB triples interpolated between `HEAT_ANCHORS`, flattened as Pillow's putpalette wants them."""
    stops = np.linspace(0, 255, len(HEAT_ANCHORS))
    anchors = np.array(HEAT_ANCHORS, dtype=np.float64)
    levels = np.arange(256)
    colors = np.stack([np.interp(levels, stops, anchors[:, channel]) for channel in range(3)], axis=1)
    return np.rint(colors).astype(np.uint8).reshape(-1).tolist()


HEAT_PALETTE = _heat_palette()


@dataclass(frozen=True, slots=True)
class ExplainedImage:
    size: ImageSize
    class_id: int
    label: str
    score: float  # the class's softmax probability
    grid: np.ndarray  # float [rows, cols] in 0..1 over the image's content, rows top to bottom
    png: bytes | None  # the heat drawn over the photo (/explain); None for grids alone
    unfamiliar: bool | None = None  # set by the model's drift monitor when it has a reference


def check(metadata: ModelMetadata, options: ExplainOptions) -> None:
    """Refuse a model without a heatmap output, or a class it does not have, before any image is read."""
    if "heatmap" not in metadata.outputs:
        raise CannotExplainError(
            f"model {metadata.name}:{metadata.version} cannot explain: its file has no heatmap output "
            "(class activation maps need a global-pooling and dense head; docs/model-contract.md)",
            detail={"model": metadata.name, "outputs": sorted(metadata.outputs)},
        )
    if options.class_ is not None and options.class_ not in metadata.labels:
        raise UnknownLabelError(
            f"class: model {metadata.name}:{metadata.version} has no label {excerpt(options.class_)!r}",
            detail={"labels": list(metadata.labels)},
        )


def heat_grid(heatmap: np.ndarray, class_id: int, geometry: Geometry) -> np.ndarray:
    """One class's activation map [h, w, classes] -> its cells over the image's content, scaled to 0..1 (all
    0 when the map is flat)."""
    heatmap = np.asarray(heatmap)
    if heatmap.ndim != 3:
        raise ValueError(f"heatmap must have shape [h, w, classes], got {list(heatmap.shape)}")
    left, top, right, bottom = geometry.content_region_at(heatmap.shape[1], heatmap.shape[0])
    cam = heatmap[top:bottom, left:right, class_id].astype(np.float64)
    low, high = float(cam.min()), float(cam.max())
    if not np.isfinite(low) or not np.isfinite(high):
        raise ValueError("the heatmap holds NaN or infinite values")
    return (cam - low) / (high - low) if high > low else np.zeros_like(cam)


def render_heat_png(grid: np.ndarray, preview: Image.Image) -> bytes:
    """The grid smoothed to the preview's size (bilinear between cell centres) and laid over it as PNG."""
    heat = Image.fromarray(np.asarray(grid, dtype=np.float32) * 255, mode="F")
    level = heat.resize(preview.size, Image.Resampling.BILINEAR).convert("L")
    colored = level.copy()
    colored.putpalette(HEAT_PALETTE)
    low, high = (round(255 * alpha) for alpha in HEAT_ALPHA)
    alpha = level.point([low + (high - low) * value // 255 for value in range(256)])
    photo = preview if preview.mode == "RGB" else preview.convert("RGB")
    picture = Image.composite(colored.convert("RGB"), photo, alpha)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def finish_grid(
    outputs: dict[str, np.ndarray], image: PreparedImage, labels: Sequence[str], options: ExplainOptions
) -> ExplainedImage:
    probabilities = np.asarray(outputs["probabilities"]).reshape(-1)
    if options.class_ is None:
        class_id = top_k(probabilities, labels, 1)[0].class_id
    else:
        class_id = labels.index(options.class_)
    grid = heat_grid(outputs["heatmap"], class_id, image.geometry)
    return ExplainedImage(
        ImageSize.of(image), class_id, labels[class_id], float(probabilities[class_id]), grid, None
    )


def finish_picture(
    outputs: dict[str, np.ndarray], image: PreparedImage, labels: Sequence[str], options: ExplainOptions
) -> ExplainedImage:
    """The grid and its picture over the photo, at most `OVERLAY_MAX_SIDE` on its longer side."""
    explained = finish_grid(outputs, image, labels, options)
    if image.preview is None:
        raise ValueError("a heat picture needs a preview of the photo")
    return replace(explained, png=render_heat_png(explained.grid, image.preview))


def observe(
    outputs: dict[str, np.ndarray],
    image: PreparedImage,
    finished: ExplainedImage,
    labels: Sequence[str],
    options: ExplainOptions,
) -> Observation:
    """What the classifier would answer, whichever class the call asked to see: explained images are the
    classifier's traffic too."""
    return top_class_observation(top_k(outputs["probabilities"], labels, 1)[0])


def _overlay_side(options: ExplainOptions) -> int:
    return OVERLAY_MAX_SIDE


EXPLAIN = TaskSpec("classify", finish_grid, observe, check=check)
EXPLAIN_PICTURE = TaskSpec("classify", finish_picture, observe, _overlay_side, check)
