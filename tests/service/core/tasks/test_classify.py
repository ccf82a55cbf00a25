"""Classification post-processing by hand-checked cases: top-k order, ties and input checks."""

from __future__ import annotations

import numpy as np
import pytest

from service.api.options import ClassifyOptions
from service.core.imaging import Geometry, PreparedImage
from service.core.tasks.classify import finish, observe, top_k

LABELS = ["circle", "square", "star"]


def test_top_k_orders_best_first_and_clips_k() -> None:
    probabilities = np.array([0.1, 0.6, 0.3], dtype=np.float32)
    assert top_k(probabilities, LABELS, 2) == [
        (1, "square", pytest.approx(0.6)),
        (2, "star", pytest.approx(0.3)),
    ]
    assert [class_id for class_id, _, _ in top_k(probabilities, LABELS, 10)] == [1, 2, 0]


def test_top_k_breaks_ties_by_class_id_and_checks_its_inputs() -> None:
    assert [label for _, label, _ in top_k(np.array([0.25, 0.5, 0.25]), LABELS, 3)] == [
        "square",
        "circle",
        "star",
    ]
    with pytest.raises(ValueError, match="labels"):
        top_k(np.array([0.5, 0.5]), LABELS, 1)
    with pytest.raises(ValueError, match="k must"):
        top_k(np.array([0.2, 0.3, 0.5]), LABELS, 0)


def test_drift_observes_the_top_class_whatever_top_k() -> None:
    image = PreparedImage(np.zeros((4, 4, 3), np.float32), Geometry.plan(4, 4, 4, 4, "stretch"), None, 0.0)
    outputs = {"probabilities": np.array([0.1, 0.6, 0.3], dtype=np.float32)}
    options = ClassifyOptions(top_k=1)
    observed = observe(outputs, image, finish(outputs, image, LABELS, options), LABELS, options)
    assert observed.confidence == pytest.approx(0.6)
    assert observed.mixes == {"class": {1: 1.0}}
    assert observed.numbers == {}
