"""Detection: candidate boxes -> thresholded, per-class non-max-suppressed detections in original pixels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from service.api.options import DetectOptions
from service.core.contract import check_class_count
from service.core.imaging import Geometry, PreparedImage
from service.core.tasks.task import ImageSize, Observation, TaskSpec


@dataclass(frozen=True)
class Detection:
    """One object found: class, score (class probability x predicted IoU), and box in original pixels."""

    class_id: int
    label: str
    score: float
    iou: float
    box: tuple[float, float, float, float]


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
    check_class_count(class_probabilities.shape[1], labels)
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


@dataclass(frozen=True, slots=True)
class DetectedImage:
    size: ImageSize
    detections: list[Detection]
    unfamiliar: bool | None = None  # set by the model's drift monitor when it has a reference


def finish(
    outputs: dict[str, np.ndarray], image: PreparedImage, labels: Sequence[str], options: DetectOptions
) -> DetectedImage:
    found = detect(
        outputs["boxes"],
        outputs["iou"],
        outputs["class_probabilities"],
        labels,
        image.geometry,
        score_threshold=options.score_threshold,
        iou_threshold=options.iou_threshold,
        max_detections=options.max_detections,
    )
    return DetectedImage(ImageSize.of(image), found)


# Drift is measured at the default thresholds, so a client asking for other ones does not move it.
MONITORED = DetectOptions()


def observe(
    outputs: dict[str, np.ndarray],
    image: PreparedImage,
    finished: DetectedImage,
    labels: Sequence[str],
    options: DetectOptions,
) -> Observation:
    """The detections at the default thresholds (how many, each one's share of the image and its score), and
    the best score: the first detection's, or with none, the best candidate's below the threshold."""
    found = finished.detections
    if not _monitored_thresholds(options):
        found = finish(outputs, image, labels, MONITORED).detections
    area = finished.size.width * finished.size.height
    return Observation(
        found[0].score if found else _best_candidate_score(outputs),
        {
            "boxes": (float(len(found)),),
            "box_area": tuple((x1 - x0) * (y1 - y0) / area for x0, y0, x1, y1 in (d.box for d in found)),
            "score": tuple(d.score for d in found),
        },
        {},
    )


def _best_candidate_score(outputs: dict[str, np.ndarray]) -> float:
    """The best score any candidate has: the largest class probability x IoU over every class and candidate
    (an IoU is 0..1, so the product's largest element is the best class's). One product and one
    reduction over the flat array: 3 us for 144 candidates of 6 classes, 12.5 us class by class."""
    probabilities = np.asarray(outputs["class_probabilities"])
    if not probabilities.size:
        return 0.0
    return float((probabilities * np.asarray(outputs["iou"]).reshape(-1, 1)).max())


def _monitored_thresholds(options: DetectOptions) -> bool:
    return (options.score_threshold, options.iou_threshold, options.max_detections) == (
        MONITORED.score_threshold,
        MONITORED.iou_threshold,
        MONITORED.max_detections,
    )


DETECT = TaskSpec("detect", finish, observe)
