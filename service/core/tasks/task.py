"""What the engine needs of a task: its name, its options, and how it finishes one image from the outputs."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

import numpy as np

from service.api.options import ModelChoice, TaskOptions
from service.api.terms import Task
from service.core.imaging import PreparedImage

if TYPE_CHECKING:
    from service.core.contract import ModelMetadata  # the contract's reference imports Observation from here

Options = TypeVar("Options", bound=TaskOptions)
Result = TypeVar("Result")


@dataclass(frozen=True, slots=True)
class ImageSize:
    """Width and height of the upright input image, in pixels."""

    width: int
    height: int

    @classmethod
    def of(cls, image: PreparedImage) -> ImageSize:
        return cls(image.geometry.original_width, image.geometry.original_height)


@dataclass(frozen=True, slots=True)
class Observation:
    """What drift monitoring measures of one answered image beyond its pixels (the signals of
    docs/model-contract.md): its confidence, numeric signals (one value, or one per box) and mixes over the
    labels (label index -> weight)."""

    confidence: float
    numbers: dict[str, tuple[float, ...]]
    mixes: dict[str, dict[int, float]]


def _no_preview(options: ModelChoice) -> int | None:
    return None


def _any_model(metadata: ModelMetadata, options: ModelChoice) -> None:
    return None


@dataclass(frozen=True)
class TaskSpec(Generic[Options, Result]):
    """A task as the engine runs it on models of the task `runs_on`: `finish` turns one image's outputs (by
    role) into its answer, and `observe` measures that answer for drift monitoring, both in the run thread;
    `preview_side` is the longer side of the upright copy it needs, None for none; `check` refuses a model
    or options it cannot answer with (a ServiceError) before any image is decoded."""

    runs_on: Task
    finish: Callable[[dict[str, np.ndarray], PreparedImage, Sequence[str], Options], Result]
    observe: Callable[[dict[str, np.ndarray], PreparedImage, Result, Sequence[str], Options], Observation]
    preview_side: Callable[[Options], int | None] = _no_preview
    check: Callable[[ModelMetadata, Options], None] = _any_model
