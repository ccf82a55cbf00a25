"""Metrics implemented once, numpy only: classification, detection (VOC-style) and segmentation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

MATCH_IOU = 0.5


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of predicted class ids equal to the true ones."""
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.size == 0:
        raise ValueError("accuracy needs two non-empty arrays of the same shape")
    return float(np.mean(y_true == y_pred))


def per_class_accuracy(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str]) -> dict[str, float]:
    """Accuracy over each true class's images (recall per class); NaN-free: classes with none are left out."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return {
        label: float(np.mean(y_pred[y_true == index] == index))
        for index, label in enumerate(labels)
        if np.any(y_true == index)
    }


def box_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of boxes given as x_min, y_min, x_max, y_max: [A, 4] x [B, 4] -> [A, B]."""
    a = np.asarray(boxes_a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(boxes_b, dtype=np.float64).reshape(-1, 4)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


@dataclass(frozen=True)
class Detections:
    """One image's boxes [N, 4], class ids [N] and (for predictions) scores [N]."""

    boxes: np.ndarray
    classes: np.ndarray
    scores: np.ndarray | None = None


def average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """VOC 2010+ all-point interpolated area under the precision-recall curve."""
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[0.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    steps = np.nonzero(r[1:] != r[:-1])[0]
    return float(np.sum((r[steps + 1] - r[steps]) * p[steps + 1]))


def _match_class(
    truths: Sequence[Detections], preds: Sequence[Detections], cls: int, iou_threshold: float
) -> tuple[np.ndarray, np.ndarray, int]:
    """Greedy VOC matching for one class: scores and true-positive flags of all predictions, and GT count."""
    entries: list[tuple[float, int, np.ndarray]] = []
    gt_boxes: list[np.ndarray] = []
    for image, (truth, pred) in enumerate(zip(truths, preds, strict=True)):
        gt_boxes.append(np.asarray(truth.boxes).reshape(-1, 4)[np.asarray(truth.classes) == cls])
        keep = np.asarray(pred.classes) == cls
        scores = np.asarray(pred.scores)[keep]
        boxes = np.asarray(pred.boxes).reshape(-1, 4)[keep]
        entries.extend((float(s), image, box) for s, box in zip(scores, boxes, strict=True))
    entries.sort(key=lambda entry: -entry[0])
    used = [np.zeros(len(g), dtype=bool) for g in gt_boxes]
    tp = np.zeros(len(entries), dtype=bool)
    for i, (_, image, box) in enumerate(entries):
        gts = gt_boxes[image]
        if len(gts) == 0:
            continue
        overlaps = box_iou(box[None], gts)[0]
        best = int(np.argmax(overlaps))
        if overlaps[best] >= iou_threshold and not used[image][best]:
            used[image][best] = True
            tp[i] = True
    scores = np.array([entry[0] for entry in entries])
    return scores, tp, sum(len(g) for g in gt_boxes)


def mean_average_precision(
    truths: Sequence[Detections],
    preds: Sequence[Detections],
    num_classes: int,
    iou_threshold: float = MATCH_IOU,
) -> tuple[float, list[float | None]]:
    """VOC-style mAP at an IoU threshold; per-class AP is None for classes with no ground truth."""
    per_class: list[float | None] = []
    for cls in range(num_classes):
        _, tp, n_gt = _match_class(truths, preds, cls, iou_threshold)
        if n_gt == 0:
            per_class.append(None)
            continue
        cum_tp = np.cumsum(tp)
        cum_fp = np.cumsum(~tp)
        recall = cum_tp / n_gt
        precision = cum_tp / np.maximum(cum_tp + cum_fp, 1)
        per_class.append(average_precision(recall, precision))
    valid = [ap for ap in per_class if ap is not None]
    return (float(np.mean(valid)) if valid else 0.0), per_class


def matched_box_iou(
    truths: Sequence[Detections], preds: Sequence[Detections], iou_threshold: float = MATCH_IOU
) -> float:
    """Mean IoU of ground-truth boxes matched to predictions (same class, IoU >= threshold, best first)."""
    ious: list[float] = []
    for truth, pred in zip(truths, preds, strict=True):
        gts = np.asarray(truth.boxes).reshape(-1, 4)
        used = np.zeros(len(gts), dtype=bool)
        order = np.argsort(-np.asarray(pred.scores)) if len(pred.classes) else np.array([], dtype=int)
        for i in order:
            same = (np.asarray(truth.classes) == pred.classes[i]) & ~used
            if not same.any():
                continue
            overlaps = np.where(same, box_iou(np.asarray(pred.boxes)[i][None], gts)[0], -1.0)
            best = int(np.argmax(overlaps))
            if overlaps[best] >= iou_threshold:
                used[best] = True
                ious.append(float(overlaps[best]))
    return float(np.mean(ious)) if ious else 0.0


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts [true, predicted] over all pixels (or samples)."""
    t = np.asarray(y_true).ravel().astype(np.int64)
    p = np.asarray(y_pred).ravel().astype(np.int64)
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes
    )


def per_class_iou(conf: np.ndarray) -> np.ndarray:
    """IoU of each class from a confusion matrix; NaN for a class absent from both truth and prediction."""
    tp = np.diag(conf).astype(np.float64)
    union = conf.sum(axis=0) + conf.sum(axis=1) - tp
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, tp / union, np.nan)


def mean_iou(conf: np.ndarray) -> float:
    """Mean of the per-class IoUs over classes that occur."""
    return float(np.nanmean(per_class_iou(conf)))


def pixel_accuracy(conf: np.ndarray) -> float:
    """Fraction of pixels whose predicted class is right."""
    total = conf.sum()
    return float(np.trace(conf) / total) if total else 0.0
