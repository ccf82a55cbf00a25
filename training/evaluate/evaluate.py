"""Run a model that speaks the contract (Keras or ONNX Runtime) over a held-out split and score it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from service.core.imaging import Geometry
from service.core.tasks.detect import DetectOptions, detect
from training.data.arrays import ArraySet
from training.evaluate import metrics
from training.evaluate.metrics import Detections

# A predictor maps a batch of raw 0..255 NHWC images to the contract's outputs by role.
Predictor = Callable[[np.ndarray], dict[str, np.ndarray]]

# mAP ranks every candidate down to a score this low; the matched IoU scores what `/detect` answers by
# default.
MAP_OPTIONS = DetectOptions(score_threshold=0.001)
SERVED_OPTIONS = DetectOptions()


def predict_all(predict: Predictor, images: np.ndarray, batch: int = 64) -> dict[str, np.ndarray]:
    """Predict in batches and stack each output."""
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(images), batch):
        for role, value in predict(images[start : start + batch]).items():
            parts.setdefault(role, []).append(np.asarray(value))
    return {role: np.concatenate(values) for role, values in parts.items()}


def decode_detections(
    boxes: np.ndarray,
    iou: np.ndarray,
    class_probabilities: np.ndarray,
    labels: Sequence[str],
    size: tuple[int, int],
    options: DetectOptions = SERVED_OPTIONS,
) -> Detections:
    """One image's candidates through the service's own post-processing, as `/detect` answers an upload of
    the model's input size (`size`: width, height), with the boxes normalised back to 0..1."""
    width, height = size
    geometry = Geometry.plan(width, height, width, height, "stretch")
    found = detect(
        boxes,
        iou,
        class_probabilities,
        labels,
        geometry,
        score_threshold=options.score_threshold,
        iou_threshold=options.iou_threshold,
        max_detections=options.max_detections,
    )
    pixels = np.array([detection.box for detection in found], dtype=np.float64).reshape(-1, 4)
    return Detections(
        boxes=pixels / [width, height, width, height],
        classes=np.array([detection.class_id for detection in found], dtype=int),
        scores=np.array([detection.score for detection in found], dtype=np.float64),
    )


def ground_truth(data: ArraySet) -> list[Detections]:
    if data.boxes is None or data.box_classes is None:
        raise ValueError("detection ground truth needs boxes")
    return [
        Detections(boxes=b[c >= 0], classes=c[c >= 0])
        for b, c in zip(data.boxes, data.box_classes, strict=True)
    ]


def evaluate_outputs(
    task: str, outputs: dict[str, np.ndarray], data: ArraySet, labels: Sequence[str]
) -> dict[str, Any]:
    """The held-out metrics a model card and `vision.metrics` report for `task`."""
    if task == "classify":
        return {"accuracy": metrics.accuracy(data.labels, outputs["probabilities"].argmax(-1))}
    if task == "detect":
        truths = ground_truth(data)
        size = (data.images.shape[2], data.images.shape[1])
        candidates = list(zip(outputs["boxes"], outputs["iou"], outputs["class_probabilities"], strict=True))
        ranked = [decode_detections(*found, labels, size, MAP_OPTIONS) for found in candidates]
        kept = [decode_detections(*found, labels, size, SERVED_OPTIONS) for found in candidates]
        map50, per_class = metrics.mean_average_precision(truths, ranked, len(labels))
        return {
            "map50": map50,
            "mean_iou": metrics.matched_box_iou(truths, kept),
            "ap50_per_class": dict(zip(labels, per_class, strict=True)),
            "score_threshold": SERVED_OPTIONS.score_threshold,
            "nms_iou": SERVED_OPTIONS.iou_threshold,
        }
    assert data.masks is not None
    conf = metrics.confusion_matrix(data.masks, outputs["probabilities"].argmax(-1), 3)
    per_class = metrics.per_class_iou(conf)
    return {
        "miou": metrics.mean_iou(conf),
        "pixel_accuracy": metrics.pixel_accuracy(conf),
        "iou_per_class": {label: float(v) for label, v in zip(labels, per_class, strict=True)},
    }


def evaluate_predictor(
    predict: Predictor, task: str, data: ArraySet, labels: Sequence[str]
) -> dict[str, Any]:
    return evaluate_outputs(task, predict_all(predict, data.images), data, labels)
