"""Whether a trained model is of any use: one that scores at chance, answers every image alike, or sees one
class only must end loudly, not with output that looks like any other run's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from training.data.arrays import ArraySet

# Held-out accuracy at most this far above chance is no better than guessing, on the test splits used here.
CHANCE_MARGIN = 0.05
# Probabilities that move less than this between any two held-out images are one answer for every image.
CONSTANT_SPREAD = 1e-3


def problems(
    task: str, outputs: dict[str, np.ndarray], data: ArraySet, labels: Sequence[str], metrics: dict[str, Any]
) -> list[str]:
    """Why the model trained on `data` is of no use, one sentence each; empty when nothing is wrong."""
    if not len(data):
        return []
    if task == "classify":
        return _classifier(outputs["probabilities"], data.labels, labels, metrics["accuracy"])
    if task == "segment":
        assert data.masks is not None
        return _one_class(outputs["probabilities"].argmax(-1), data.masks, labels, "pixel")
    assert data.box_classes is not None
    return _one_class(
        _best_candidate_classes(outputs), data.box_classes[data.box_classes >= 0], labels, "image"
    )


def _classifier(
    probabilities: np.ndarray, truth: np.ndarray, labels: Sequence[str], accuracy: float
) -> list[str]:
    found = []
    if len(probabilities) > 1 and np.ptp(probabilities, axis=0).max() < CONSTANT_SPREAD:
        found.append("it gives every held-out image the same probabilities")
    else:
        found += _one_class(probabilities.argmax(-1), truth, labels, "image")
    if len(np.unique(truth)) > 1:
        chance = np.bincount(truth).max() / len(truth)
        if accuracy <= chance + CHANCE_MARGIN:
            found.append(
                f"its held-out accuracy {accuracy:.3f} is not {CHANCE_MARGIN * 100:.0f} points above chance "
                f"({chance:.3f}, what always answering the most common class scores)"
            )
    return found


def _one_class(predicted: np.ndarray, truth: np.ndarray, labels: Sequence[str], unit: str) -> list[str]:
    """A model that answers one class for everything, where the truth has several."""
    seen = np.unique(predicted)
    if len(seen) == 1 and len(np.unique(truth)) > 1:
        return [f"it answers {labels[int(seen[0])]!r} for every held-out {unit}"]
    return []


def _best_candidate_classes(outputs: dict[str, np.ndarray]) -> np.ndarray:
    """Each image's most confident candidate's class (score = class probability x predicted IoU)."""
    scores = outputs["class_probabilities"].max(-1) * outputs["iou"]
    best = scores.argmax(-1)
    rows = np.arange(len(best))
    return outputs["class_probabilities"][rows, best].argmax(-1)
