"""Classification: softmax probabilities -> the top-k classes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from service.api.options import ClassifyOptions
from service.core.contract import check_class_count
from service.core.imaging import PreparedImage
from service.core.tasks.task import ImageSize, Observation, TaskSpec


class Prediction(NamedTuple):
    """One class and its softmax probability."""

    class_id: int
    label: str
    probability: float


def top_k(probabilities: np.ndarray, labels: Sequence[str], k: int) -> list[Prediction]:
    """The k most probable classes, best first; ties go to the lower class id."""
    probabilities = np.asarray(probabilities).reshape(-1)
    check_class_count(len(probabilities), labels)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    order = np.argsort(-probabilities, kind="stable")[:k]
    return [
        Prediction(class_id, labels[class_id], probability)
        for class_id, probability in zip(order.tolist(), probabilities[order].tolist(), strict=True)
    ]


@dataclass(frozen=True, slots=True)
class ClassifiedImage:
    size: ImageSize
    predictions: list[Prediction]
    unfamiliar: bool | None = None  # set by the model's drift monitor when it has a reference


def finish(
    outputs: dict[str, np.ndarray], image: PreparedImage, labels: Sequence[str], options: ClassifyOptions
) -> ClassifiedImage:
    return ClassifiedImage(ImageSize.of(image), top_k(outputs["probabilities"], labels, options.top_k))


def observe(
    outputs: dict[str, np.ndarray],
    image: PreparedImage,
    finished: ClassifiedImage,
    labels: Sequence[str],
    options: ClassifyOptions,
) -> Observation:
    """The top class and its probability (in every answer, whatever `top_k`)."""
    return top_class_observation(finished.predictions[0])


def top_class_observation(best: Prediction) -> Observation:
    """A classifier's signals: its top class's probability, and that class in the mix."""
    return Observation(best.probability, {}, {"class": {best.class_id: 1.0}})


CLASSIFY = TaskSpec("classify", finish, observe)
