"""Run a model that speaks the contract (Keras or ONNX Runtime) over a held-out split and score it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from training.data.arrays import ArraySet
from training.evaluate import metrics
from training.evaluate.metrics import Detections

# A predictor maps a batch of raw 0..255 NHWC images to the contract's outputs by role.
Predictor = Callable[[np.ndarray], dict[str, np.ndarray]]

SCORE_THRESHOLD = 0.25
NMS_IOU = 0.45
MAP_SCORE_FLOOR = 0.001
MAX_DETECTIONS = 100


def predict_all(predict: Predictor, images: np.ndarray, batch: int = 64) -> dict[str, np.ndarray]:
    """Predict in batches and stack each output."""
    parts: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(images), batch):
        for role, value in predict(images[start : start + batch]).items():
            parts.setdefault(role, []).append(np.asarray(value))
    return {role: np.concatenate(values) for role, values in parts.items()}


def non_max_suppression(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS: indices of kept boxes, best score first."""
    order = np.argsort(-scores)
    keep: list[int] = []
    while order.size:
        best, order = order[0], order[1:]
        keep.append(int(best))
        if order.size:
            order = order[metrics.box_iou(boxes[best][None], boxes[order])[0] <= iou_threshold]
    return np.array(keep, dtype=int)


def decode_detections(
    boxes: np.ndarray, iou: np.ndarray, class_probs: np.ndarray, score_threshold: float
) -> Detections:
    """One image's candidates -> detections: score = IoU estimate x best class probability, per-class NMS."""
    classes = class_probs.argmax(-1)
    scores = iou * class_probs.max(-1)
    keep_all: list[np.ndarray] = []
    for cls in np.unique(classes[scores >= score_threshold]):
        idx = np.nonzero((classes == cls) & (scores >= score_threshold))[0]
        keep_all.append(idx[non_max_suppression(boxes[idx], scores[idx], NMS_IOU)])
    keep = np.concatenate(keep_all) if keep_all else np.array([], dtype=int)
    keep = keep[np.argsort(-scores[keep])][:MAX_DETECTIONS]
    return Detections(boxes=boxes[keep], classes=classes[keep], scores=scores[keep])


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
        ranked = [
            decode_detections(b, i, c, MAP_SCORE_FLOOR)
            for b, i, c in zip(outputs["boxes"], outputs["iou"], outputs["class_probabilities"], strict=True)
        ]
        kept = [
            decode_detections(b, i, c, SCORE_THRESHOLD)
            for b, i, c in zip(outputs["boxes"], outputs["iou"], outputs["class_probabilities"], strict=True)
        ]
        map50, per_class = metrics.mean_average_precision(truths, ranked, len(labels))
        return {
            "map50": map50,
            "mean_iou": metrics.matched_box_iou(truths, kept),
            "ap50_per_class": dict(zip(labels, per_class, strict=True)),
            "score_threshold": SCORE_THRESHOLD,
            "nms_iou": NMS_IOU,
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
