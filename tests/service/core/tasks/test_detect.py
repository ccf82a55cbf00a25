"""Detection post-processing by hand-checked cases: thresholds, per-class NMS and box mapping."""

from __future__ import annotations

import numpy as np
import pytest

from service.api.options import DetectOptions
from service.core.imaging import Geometry, PreparedImage
from service.core.tasks.detect import Detection, detect, finish, observe

LABELS = ["circle", "square", "star"]
# Input 64x64 equals the original: normalised coordinates are pixel / 64, exact in binary floating point.
SAME_SIZE = Geometry.plan(64, 64, 64, 64, "stretch")


def candidates(*rows: tuple[tuple[int, int, int, int], float, int, float]):
    """Detector outputs from (pixel box on a 64x64 input, predicted iou, class id, class probability) rows."""
    boxes = np.array([box for box, _, _, _ in rows], dtype=np.float32) / 64
    iou = np.array([iou for _, iou, _, _ in rows], dtype=np.float32)
    probabilities = np.zeros((len(rows), len(LABELS)), dtype=np.float32)
    for row, (_, _, class_id, probability) in enumerate(rows):
        probabilities[row] = (1 - probability) / (len(LABELS) - 1)
        probabilities[row, class_id] = probability
    return boxes, iou, probabilities


def run_detect(outputs, geometry: Geometry = SAME_SIZE, **overrides: float) -> list[Detection]:
    options = {"score_threshold": 0.25, "iou_threshold": 0.45, "max_detections": 100} | overrides
    return detect(*outputs, LABELS, geometry, **options)


def test_overlapping_boxes_of_one_class_keep_only_the_best() -> None:
    outputs = candidates(
        ((0, 0, 32, 32), 0.8, 1, 0.9), ((2, 2, 34, 34), 1.0, 1, 0.5), ((40, 40, 60, 60), 1.0, 0, 0.5)
    )
    found = run_detect(outputs)
    assert found == [
        Detection(1, "square", pytest.approx(0.72), pytest.approx(0.8), (0.0, 0.0, 32.0, 32.0)),
        Detection(0, "circle", 0.5, 1.0, (40.0, 40.0, 60.0, 60.0)),
    ]


def test_overlapping_boxes_of_different_classes_are_both_kept() -> None:
    outputs = candidates(((0, 0, 32, 32), 1.0, 1, 0.9), ((0, 0, 32, 32), 1.0, 2, 0.8))
    assert [(d.label, d.box) for d in run_detect(outputs)] == [
        ("square", (0.0, 0.0, 32.0, 32.0)),
        ("star", (0.0, 0.0, 32.0, 32.0)),
    ]


def test_nms_suppresses_only_above_the_iou_threshold() -> None:
    # Same class, IoU exactly 0.5: (0,0,16,16) and (0,0,16,8).
    outputs = candidates(((0, 0, 16, 16), 1.0, 0, 0.9), ((0, 0, 16, 8), 1.0, 0, 0.8))
    assert len(run_detect(outputs, iou_threshold=0.5)) == 2
    assert [d.box for d in run_detect(outputs, iou_threshold=0.4999)] == [(0.0, 0.0, 16.0, 16.0)]


def test_a_suppressed_box_does_not_suppress_others() -> None:
    # A overlaps B (IoU 0.6), B overlaps C (IoU 0.6), A and C overlap less (IoU 1/3): greedy keeps A and C.
    outputs = candidates(
        ((0, 0, 32, 16), 1.0, 0, 0.9), ((8, 0, 40, 16), 1.0, 0, 0.8), ((16, 0, 48, 16), 1.0, 0, 0.7)
    )
    assert [d.box[0] for d in run_detect(outputs, iou_threshold=0.5)] == [0.0, 16.0]


def test_score_is_class_probability_times_iou_and_the_threshold_is_inclusive() -> None:
    outputs = candidates(((0, 0, 8, 8), 0.5, 0, 0.5), ((20, 20, 28, 28), 0.5, 1, 0.49))
    found = run_detect(outputs, score_threshold=0.25)
    assert [(d.label, d.score, d.iou) for d in found] == [("circle", 0.25, 0.5)]
    assert run_detect(outputs, score_threshold=0.2501) == []


def test_degenerate_and_off_image_boxes_are_dropped() -> None:
    outputs = candidates(
        ((10, 10, 10, 30), 1.0, 0, 0.9),  # zero width
        ((30, 30, 20, 40), 1.0, 0, 0.9),  # x_max < x_min
        ((70, 10, 90, 30), 1.0, 0, 0.9),  # entirely right of the image: zero width after clipping
        ((60, 60, 80, 80), 1.0, 1, 0.8),  # partly outside: clipped, kept
    )
    assert [d.box for d in run_detect(outputs)] == [(60.0, 60.0, 64.0, 64.0)]


def test_detections_are_best_first_and_capped() -> None:
    rows = [((8 * i, 0, 8 * i + 6, 6), 1.0, 0, 0.4 + 0.1 * i) for i in range(6)]
    found = run_detect(candidates(*rows), max_detections=3)
    assert [d.box[0] for d in found] == [40.0, 32.0, 24.0]
    assert [d.score for d in found] == sorted((d.score for d in found), reverse=True)


def greedy_nms_by_definition(outputs, iou_threshold: float) -> list[tuple[int, tuple[float, ...]]]:
    """Per-class greedy NMS written out from its definition, over pixel boxes clipped to a 64x64 input."""
    boxes, iou, probabilities = outputs
    rows = sorted(
        (
            (float(probabilities[i].max()) * float(iou[i]), int(probabilities[i].argmax()), i)
            for i in range(len(iou))
        ),
        key=lambda row: -row[0],
    )
    kept: list[tuple[int, tuple[float, ...]]] = []
    for score, class_id, i in rows:
        box = tuple(min(float(v) * 64, 64.0) for v in boxes[i])
        area = (box[2] - box[0]) * (box[3] - box[1])
        if score < 0.25 or area <= 0:
            continue
        same_class = [other for other_class, other in kept if other_class == class_id]
        if all(overlap(box, other) <= iou_threshold for other in same_class):
            kept.append((class_id, box))
    return kept


def overlap(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    width = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0)
    height = max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
    intersection = width * height
    return intersection / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - intersection)


@pytest.mark.parametrize("seed", range(5))
def test_nms_agrees_with_its_definition_on_crowded_random_scenes(seed: int) -> None:
    rng = np.random.default_rng(seed)
    corners = rng.integers(0, 48, size=(60, 2))
    sizes = rng.integers(4, 24, size=(60, 2))
    rows = [
        (
            (int(x), int(y), int(x + w), int(y + h)),
            float(rng.uniform(0.3, 1)),
            int(rng.integers(0, 3)),
            float(rng.uniform(0.4, 1)),
        )
        for (x, y), (w, h) in zip(corners, sizes, strict=True)
    ]
    outputs = candidates(*rows)
    found = run_detect(outputs, iou_threshold=0.3)
    expected = greedy_nms_by_definition(outputs, 0.3)
    assert 5 < len(expected) < 60
    assert [(d.class_id, d.box) for d in found] == [
        (class_id, pytest.approx(box)) for class_id, box in expected
    ]


def test_detect_maps_boxes_through_letterbox_padding() -> None:
    geometry = Geometry.plan(200, 100, 64, 64, "letterbox")
    outputs = candidates(((0, 16, 64, 48), 1.0, 2, 0.9), ((32, 32, 48, 40), 1.0, 0, 0.8))
    assert [d.box for d in run_detect(outputs, geometry)] == [
        (0.0, 0.0, 200.0, 100.0),
        (100.0, 50.0, 150.0, 75.0),
    ]


def test_detect_refuses_outputs_that_do_not_agree() -> None:
    boxes, iou, probabilities = candidates(((0, 0, 8, 8), 1.0, 0, 0.9))
    with pytest.raises(ValueError, match="detector outputs"):
        run_detect((boxes, np.concatenate([iou, iou]), probabilities))


def test_drift_is_observed_at_the_default_thresholds_whatever_the_request_asks() -> None:
    boxes, iou, probabilities = candidates(
        ((0, 0, 32, 32), 0.8, 1, 0.9), ((40, 40, 56, 48), 1.0, 0, 0.5), ((0, 40, 8, 48), 0.5, 2, 0.4)
    )
    outputs = {"boxes": boxes, "iou": iou, "class_probabilities": probabilities}
    image = PreparedImage(np.zeros((64, 64, 3), np.float32), SAME_SIZE, None, 0.0)
    strict = DetectOptions(score_threshold=0.7)
    answered = finish(outputs, image, LABELS, strict)
    assert len(answered.detections) == 1
    observed = observe(outputs, image, answered, LABELS, strict)
    # The third candidate (0.2) is under the default 0.25, the second (0.5) only under the request's 0.7.
    assert observed.numbers["boxes"] == (2.0,)
    assert observed.numbers["box_area"] == pytest.approx((32 * 32 / 64**2, 16 * 8 / 64**2))
    assert observed.numbers["score"] == pytest.approx((0.72, 0.5))
    assert observed.confidence == pytest.approx(0.72)
    assert observed == observe(
        outputs, image, finish(outputs, image, LABELS, DetectOptions()), LABELS, DetectOptions()
    )


def test_an_image_with_no_candidate_left_has_its_best_score_as_confidence() -> None:
    boxes, iou, probabilities = candidates(((0, 0, 32, 32), 0.2, 1, 0.5))
    outputs = {"boxes": boxes, "iou": iou, "class_probabilities": probabilities}
    image = PreparedImage(np.zeros((64, 64, 3), np.float32), SAME_SIZE, None, 0.0)
    observed = observe(
        outputs, image, finish(outputs, image, LABELS, DetectOptions()), LABELS, DetectOptions()
    )
    assert observed.confidence == pytest.approx(0.1)
    assert observed.numbers == {"boxes": (0.0,), "box_area": (), "score": ()}
