"""Metrics against cases small enough to work out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from training.data.arrays import ArraySet
from training.evaluate import metrics
from training.evaluate.evaluate import evaluate_outputs
from training.evaluate.metrics import Detections


def test_accuracy_counts_matches() -> None:
    assert metrics.accuracy(np.array([0, 1, 2, 2]), np.array([0, 2, 2, 2])) == 0.75


def test_accuracy_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="same shape"):
        metrics.accuracy(np.array([0, 1]), np.array([0]))


def test_box_iou_of_half_overlapping_squares() -> None:
    # Two 2x2 squares sharing a 1x2 strip: intersection 2, union 6.
    iou = metrics.box_iou(np.array([[0, 0, 2, 2]]), np.array([[1, 0, 3, 2], [5, 5, 6, 6], [0, 0, 2, 2]]))
    np.testing.assert_allclose(iou, [[1 / 3, 0.0, 1.0]])


def test_box_iou_of_contained_box() -> None:
    assert metrics.box_iou(np.array([[0, 0, 4, 4]]), np.array([[1, 1, 3, 3]]))[0, 0] == pytest.approx(4 / 16)


def test_average_precision_all_point_interpolation() -> None:
    # Ranked TP, FP, TP over 2 ground truths: precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1.
    # Interpolated: recall 0..1/2 at precision 1, 1/2..1 at precision 2/3 -> AP = 1/2 + 1/3.
    ap = metrics.average_precision(np.array([0.5, 0.5, 1.0]), np.array([1.0, 0.5, 2 / 3]))
    assert ap == pytest.approx(0.5 + 1 / 3)


def _truth(*boxes: tuple[list[float], int]) -> Detections:
    return Detections(boxes=np.array([b for b, _ in boxes], float), classes=np.array([c for _, c in boxes]))


def _preds(*boxes: tuple[list[float], int, float]) -> Detections:
    return Detections(
        boxes=np.array([b for b, _, _ in boxes], float).reshape(-1, 4),
        classes=np.array([c for _, c, _ in boxes], int),
        scores=np.array([s for _, _, s in boxes], float),
    )


def test_map_perfect_detections_is_one() -> None:
    truths = [_truth(([0, 0, 10, 10], 0), ([20, 20, 30, 30], 1))]
    preds = [_preds(([0, 0, 10, 10], 0, 0.9), ([20, 20, 30, 30], 1, 0.8))]
    map50, per_class = metrics.mean_average_precision(truths, preds, num_classes=3)
    assert map50 == 1.0
    assert per_class == [1.0, 1.0, None]


def test_map_hand_computed_case() -> None:
    # Class 0, two GTs in two images, ranked TP (0.9), FP in the wrong place (0.8), TP with IoU 90/110 (0.7):
    # AP 1/2 + 1/3 as above. Class 1, one GT: an FP at 0.95 ranks before the TP at 0.6 -> precision 1/2 at
    # recall 1 -> AP 1/2.
    truths = [_truth(([0, 0, 10, 10], 0), ([50, 50, 60, 60], 1)), _truth(([0, 0, 10, 10], 0))]
    preds = [
        _preds(
            ([0, 0, 10, 10], 0, 0.9),
            ([30, 30, 40, 40], 0, 0.8),
            ([0, 0, 10, 10], 1, 0.95),
            ([50, 50, 60, 60], 1, 0.6),
        ),
        _preds(([1, 0, 11, 10], 0, 0.7)),
    ]
    map50, per_class = metrics.mean_average_precision(truths, preds, num_classes=2)
    assert per_class[0] == pytest.approx(0.5 + 1 / 3)
    assert per_class[1] == pytest.approx(0.5)
    assert map50 == pytest.approx((0.5 + 1 / 3 + 0.5) / 2)


def test_map_counts_a_duplicate_as_a_false_positive() -> None:
    # Ranked: GT1 found, GT1 found again (duplicate -> FP), GT2 found: same ranks as the case above -> 5/6.
    truths = [_truth(([0, 0, 10, 10], 0), ([20, 20, 30, 30], 0))]
    preds = [_preds(([0, 0, 10, 10], 0, 0.9), ([0, 0, 10, 9], 0, 0.8), ([20, 20, 30, 30], 0, 0.7))]
    map50, _ = metrics.mean_average_precision(truths, preds, num_classes=1)
    assert map50 == pytest.approx(5 / 6)


def test_map_threshold_is_inclusive_at_half() -> None:
    truths = [_truth(([0, 0, 10, 10], 0))]
    assert metrics.mean_average_precision(truths, [_preds(([0, 0, 10, 5], 0, 0.9))], 1)[0] == 1.0
    assert metrics.mean_average_precision(truths, [_preds(([0, 0, 10, 4], 0, 0.9))], 1)[0] == 0.0


def test_matched_box_iou_averages_matches_only() -> None:
    # GT A matched with IoU 0.8 (box 10x8 inside 10x10); GT B matched exactly; a far prediction is ignored.
    truths = [_truth(([0, 0, 10, 10], 0), ([20, 20, 30, 30], 1))]
    preds = [_preds(([0, 0, 10, 8], 0, 0.9), ([20, 20, 30, 30], 1, 0.8), ([70, 70, 80, 80], 1, 0.7))]
    assert metrics.matched_box_iou(truths, preds) == pytest.approx((0.8 + 1.0) / 2)


def test_matched_box_iou_ignores_wrong_class_and_poor_overlap() -> None:
    truths = [_truth(([0, 0, 10, 10], 0))]
    preds = [_preds(([0, 0, 10, 10], 1, 0.9), ([0, 0, 10, 4], 0, 0.8))]
    assert metrics.matched_box_iou(truths, preds) == 0.0


def test_mask_metrics_hand_computed() -> None:
    truth = np.array([[0, 0, 1], [1, 2, 2]])
    pred = np.array([[0, 1, 1], [1, 2, 0]])
    conf = metrics.confusion_matrix(truth, pred, 3)
    np.testing.assert_array_equal(conf, [[1, 1, 0], [0, 2, 0], [1, 0, 1]])
    # IoU: class 0 -> 1 / (2+2-1) = 1/3; class 1 -> 2 / (2+3-2) = 2/3; class 2 -> 1 / (2+1-1) = 1/2.
    np.testing.assert_allclose(metrics.per_class_iou(conf), [1 / 3, 2 / 3, 1 / 2])
    assert metrics.mean_iou(conf) == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert metrics.pixel_accuracy(conf) == pytest.approx(4 / 6)


def test_mean_iou_skips_classes_absent_everywhere() -> None:
    conf = metrics.confusion_matrix(np.array([0, 0, 1]), np.array([0, 0, 1]), 3)
    assert math.isnan(metrics.per_class_iou(conf)[2])
    assert metrics.mean_iou(conf) == 1.0


def _one_cell_outputs(boxes: list[list[float]]) -> dict[str, np.ndarray]:
    """A detector with one candidate box per image (K = 1), sure of class 0 each time."""
    count = len(boxes)
    return {
        "boxes": np.array(boxes, np.float32)[:, None],
        "iou": np.full((count, 1), 0.9, np.float32),
        "class_probabilities": np.tile(np.array([[[0.9, 0.1]]], np.float32), (count, 1, 1)),
    }


def _scenes(boxes: list[list[list[float]]]) -> ArraySet:
    most = max(len(b) for b in boxes)
    padded = np.zeros((len(boxes), most, 4), np.float32)
    classes = np.full((len(boxes), most), -1, np.int64)
    for i, scene in enumerate(boxes):
        padded[i, : len(scene)] = scene
        classes[i, : len(scene)] = 0
    images = np.zeros((len(boxes), 16, 16, 3), np.float32)
    return ArraySet(images=images, labels=np.zeros(len(boxes), np.int64), boxes=padded, box_classes=classes)


def test_one_box_on_one_object_each_is_scored_as_a_localiser() -> None:
    box = [0.1, 0.1, 0.6, 0.6]
    found = evaluate_outputs("detect", _one_cell_outputs([box, box]), _scenes([[box], [box]]), ("a", "b"))
    assert found["accuracy"] == 1.0
    assert found["box_iou"] == pytest.approx(1.0)


def test_a_one_cell_detector_on_crowded_scenes_is_scored_as_a_detector() -> None:
    box, other = [0.1, 0.1, 0.6, 0.6], [0.6, 0.6, 0.9, 0.9]
    found = evaluate_outputs(
        "detect", _one_cell_outputs([box, box]), _scenes([[box, other], [box]]), ("a", "b")
    )
    assert "box_iou" not in found
    assert found["map50"] == pytest.approx(2 / 3)
