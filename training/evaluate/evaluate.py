"""Run a model that speaks the contract (Keras or ONNX Runtime) over a held-out split and score it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from tqdm import tqdm

from service.api.options import DetectOptions
from service.core.imaging import Geometry
from service.core.tasks.detect import detect
from training.data.arrays import ArraySet
from training.evaluate import metrics
from training.evaluate.metrics import Detections

# The metrics a model card leads with, the first of each the one a run is judged by.
HEADLINE = {
    "classify": ("accuracy",),
    "detect": ("map50", "mean_iou", "box_iou", "accuracy"),
    "segment": ("miou", "pixel_accuracy"),
}
# Every metric a run or an export records, in one line each: the model card prints these beside the values.
DEFINITIONS = {
    "accuracy": "share of held-out images whose top class is the true one (a localiser: its one box's class)",
    "accuracy_per_class": "accuracy over the held-out images of each true class",
    "box_iou": "a localiser's mean IoU of its one box with the true box, at any score",
    "map50": "VOC mean average precision: a detection counts when its IoU with a true box of its class is "
    "at least 0.5",
    "ap50_per_class": "average precision at IoU 0.5 for each class",
    "mean_iou": "mean IoU of the true boxes that /detect's answers at the served settings match (same class, "
    "IoU at least 0.5); 0 when none match",
    "score_threshold": "the served score threshold mean_iou was measured at",
    "nms_iou": "the served non-max suppression IoU mean_iou was measured at",
    "miou": "mean over pet, background and border of each class's pixel IoU",
    "pixel_accuracy": "share of held-out pixels given their true trimap class",
    "iou_per_class": "each trimap class's pixel IoU",
    "batchnorm": "the headline metric in inference mode and again with batch statistics; far apart, the "
    "moving statistics do not describe the data",
    "warnings": "why the model is of no use, when it is not",
    "dataset": "the data set the split came from",
    "split": "the split scored: never trained or early-stopped on",
    "images": "held-out images scored",
    "onnx_max_abs_diff": "the largest difference between ONNX Runtime's outputs and Keras's on held-out "
    "images",
    "fp32_accuracy": "the FP32 model's accuracy on the same images",
    "accuracy_change": "INT8 accuracy less FP32 accuracy",
    "quantization": "how the weights and activations were quantised",
    "calibration_images": "training images that set the INT8 activation ranges",
}
# A predictor maps a batch of raw 0..255 NHWC images to the contract's outputs by role.
Predictor = Callable[[np.ndarray], dict[str, np.ndarray]]

# mAP ranks every candidate down to a score this low; the matched IoU scores what `/detect` answers by
# default.
MAP_OPTIONS = DetectOptions(score_threshold=0.001)
SERVED_OPTIONS = DetectOptions()
# An image's one most confident candidate, whatever its score: what a detector would answer at best.
BEST_CANDIDATE = DetectOptions(score_threshold=0, max_detections=1)


def predict_all(predict: Predictor, images: np.ndarray, batch: int = 64) -> dict[str, np.ndarray]:
    """Predict in batches, with a progress bar on a terminal, and stack each output."""
    parts: dict[str, list[np.ndarray]] = {}
    starts = range(0, len(images), batch)
    for start in tqdm(
        starts, desc="predicting", unit="batch", leave=False, disable=None if len(starts) > 1 else True
    ):
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
        predicted = outputs["probabilities"].argmax(-1)
        return {
            "accuracy": metrics.accuracy(data.labels, predicted),
            "accuracy_per_class": metrics.per_class_accuracy(data.labels, predicted, labels),
        }
    if task == "detect":
        truths = ground_truth(data)
        size = (data.images.shape[2], data.images.shape[1])
        # One candidate box on one object per image: a localiser's scores. A grid detector small enough to
        # have one cell, on scenes of several objects, gets a detector's.
        if outputs["boxes"].shape[1] == 1 and all(len(truth.classes) == 1 for truth in truths):
            return localization(outputs, truths, labels, size)
        return detection_scores(outputs, truths, labels, size)
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


def detection_scores(
    outputs: dict[str, np.ndarray], truths: list[Detections], labels: Sequence[str], size: tuple[int, int]
) -> dict[str, Any]:
    """VOC mAP@0.5 over every candidate, and the mean IoU of what `/detect` answers by default."""
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


def localization(
    outputs: dict[str, np.ndarray], truths: list[Detections], labels: Sequence[str], size: tuple[int, int]
) -> dict[str, Any]:
    """A one-box model (K = 1) on one object per image: class accuracy and the mean IoU of its box, each
    judged without a score threshold, beside the mAP and served IoU every detector reports."""
    classes = np.array([truth.classes[0] for truth in truths])
    boxes = np.stack([truth.boxes[0] for truth in truths])
    ious = [
        metrics.box_iou(p[None], t[None])[0, 0] for p, t in zip(outputs["boxes"][:, 0], boxes, strict=True)
    ]
    return {
        "accuracy": metrics.accuracy(classes, outputs["class_probabilities"][:, 0].argmax(-1)),
        "box_iou": float(np.mean(ious)),
        **detection_scores(outputs, truths, labels, size),
    }
