"""Measure the reference a model file carries (`vision.reference`): held-out images through the service's own
decode, session run, task finish and task observation, so that live traffic is measured exactly alike.

Needs onnxruntime and the service only, so `python -m training sign reference` runs in a service install."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from service.api.options import ClassifyOptions, DetectOptions, SegmentOptions, TaskOptions
from service.api.terms import Task
from service.core.errors import ServiceError
from service.core.imaging import ImageLimits, PreparedImage
from service.core.model import Model
from service.core.reference import Reference, ReferenceBuilder
from service.core.tasks.classify import CLASSIFY
from service.core.tasks.detect import DETECT
from service.core.tasks.segment import SEGMENT
from service.core.tasks.task import TaskSpec

logger = logging.getLogger("training.reference")

# What the service answers when a request names no options: the reference is measured the same way.
TASKS: dict[Task, tuple[TaskSpec, TaskOptions]] = {
    "classify": (CLASSIFY, ClassifyOptions()),
    "detect": (DETECT, DetectOptions()),
    "segment": (SEGMENT, SegmentOptions()),
}
# The user's own files: trusted, so bounded only against a corrupt one.
LOCAL_IMAGE_LIMITS = ImageLimits(max_bytes=1 << 30, max_pixels=1 << 30)
BATCH = 32


def measure_reference(model: Model, uploads: Iterable[Path | bytes], source: str) -> Reference:
    """The reference of `model` over `uploads` (files or encoded images); one that will not decode is
    skipped with a warning."""
    task, options = TASKS[model.metadata.task]
    labels = model.metadata.labels
    builder = ReferenceBuilder(task.runs_on, labels)
    for batch in _batches(_prepared(model, uploads)):
        outputs = model.run(np.stack([image.pixels for image in batch]))
        for row, image in enumerate(batch):
            own = {role: values[row] for role, values in outputs.items()}
            finished = task.finish(own, image, labels, options)
            builder.add(image, task.observe(own, image, finished, labels, options))
    return builder.build(source)


def _prepared(model: Model, uploads: Iterable[Path | bytes]) -> Iterator[PreparedImage]:
    for upload in uploads:
        data = upload.read_bytes() if isinstance(upload, Path) else upload
        try:
            yield model.prepare(data, LOCAL_IMAGE_LIMITS)
        except ServiceError as exc:
            logger.warning("skipped %s: %s", upload if isinstance(upload, Path) else "an image", exc.message)


def _batches(images: Iterator[PreparedImage]) -> Iterator[list[PreparedImage]]:
    batch: list[PreparedImage] = []
    for image in images:
        batch.append(image)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch
