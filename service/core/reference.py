"""The reference a model file carries (`vision.reference`): how its held-out images looked to it, signal by
signal, binned so that live traffic can be binned alike and compared with the population stability index."""

from __future__ import annotations

import itertools
import math
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from typing import Annotated

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from service.api.terms import Task
from service.core.imaging import PreparedImage
from service.core.tasks.task import Observation

# Every task's signals, measured of the image as the model sees it and of the upright original.
INPUT_SIGNALS = ("brightness", "aspect_ratio", "megapixels")
TASK_SIGNALS: dict[Task, tuple[str, ...]] = {
    "classify": ("confidence", *INPUT_SIGNALS, "class"),
    "detect": ("confidence", *INPUT_SIGNALS, "boxes", "box_area", "score"),
    "segment": ("confidence", *INPUT_SIGNALS, "class_fractions"),
}
# Signals over the model's labels; every other signal is a number.
MIX_SIGNALS = frozenset({"class", "class_fractions"})
# Numeric signals are cut at the reference's deciles, plus its least and (just above) its greatest value,
# so that values outside what the model was measured on fall in bins of their own.
DECILES = tuple(q / 10 for q in range(1, 10))
# An image whose confidence is under this quantile of the reference's is `unfamiliar`.
LOW_CONFIDENCE_QUANTILE = 0.01
# Added to every bin's count on both sides before comparing: an empty bin would make the PSI infinite.
PSEUDO_COUNT = 0.5


class Histogram(BaseModel):
    """A numeric signal's counts: bin 0 holds values under cuts[0], bin i values in [cuts[i-1], cuts[i]),
    the last bin values from the last cut up."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cuts: tuple[float, ...] = Field(min_length=1, description="Increasing bin edges.")
    counts: tuple[Annotated[float, Field(ge=0)], ...] = Field(description="One count per bin: len(cuts) + 1.")

    @model_validator(mode="after")
    def _bins_fit_cuts(self) -> Histogram:
        if any(high <= low for low, high in itertools.pairwise(self.cuts)):
            raise ValueError("cuts must increase")
        if len(self.counts) != len(self.cuts) + 1:
            raise ValueError(f"{len(self.cuts)} cuts make {len(self.cuts) + 1} bins, not {len(self.counts)}")
        return self

    def bin_of(self, value: float) -> int:
        return bisect_right(self.cuts, value)

    def bin_names(self) -> list[str]:
        edges = [_short(cut) for cut in self.cuts]
        return [
            f"< {edges[0]}",
            *(f"{a} to {b}" for a, b in itertools.pairwise(edges)),
            f">= {edges[-1]}",
        ]


class Mix(BaseModel):
    """A signal over the model's labels: each label's weight, in the order of `vision.labels`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    counts: tuple[Annotated[float, Field(ge=0)], ...] = Field(min_length=1)


class Reference(BaseModel):
    """What a model's held-out images looked like to it: the distribution of each signal, and the confidence
    under which an image is called unfamiliar."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    images: int = Field(ge=1, description="How many images were measured.")
    source: str = Field(default="", description="What they were, e.g. the run's held-out split.")
    low_confidence: float = Field(
        ge=0, le=1, description="The 1st percentile of their confidence: an image under it is unfamiliar."
    )
    signals: dict[str, Histogram | Mix]

    def check_fits(self, task: Task, labels: Sequence[str]) -> None:
        """ValueError unless each signal is one of `task`'s, of its kind, a mix with one count per label."""
        for name, signal in self.signals.items():
            if name not in TASK_SIGNALS[task]:
                raise ValueError(
                    f"{name!r} is not a signal of {task!r}; expected some of {list(TASK_SIGNALS[task])}"
                )
            if isinstance(signal, Mix) != (name in MIX_SIGNALS):
                kind = "counts per label" if name in MIX_SIGNALS else "cuts and counts"
                raise ValueError(f"signals.{name} must have {kind}")
            if isinstance(signal, Mix) and len(signal.counts) != len(labels):
                raise ValueError(f"signals.{name} has {len(signal.counts)} counts for {len(labels)} labels")


def input_numbers(image: PreparedImage) -> dict[str, tuple[float, ...]]:
    """The signals of the image itself: its brightness as the model sees it (padding left out), the aspect
    ratio and megapixels of the upright original."""
    width, height = image.geometry.original_width, image.geometry.original_height
    return {
        "brightness": (image.brightness,),
        "aspect_ratio": (width / height,),
        "megapixels": (width * height / 1e6,),
    }


def numbers_of(image: PreparedImage, observation: Observation) -> dict[str, tuple[float, ...]]:
    """Every numeric signal of one answered image."""
    return {"confidence": (observation.confidence,), **input_numbers(image), **observation.numbers}


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """The population stability index of `actual` counts against `expected` counts over the same bins."""
    bins = len(expected)
    expected_total = sum(expected) + PSEUDO_COUNT * bins
    actual_total = sum(actual) + PSEUDO_COUNT * bins
    index = 0.0
    for want, got in zip(expected, actual, strict=True):
        e = (want + PSEUDO_COUNT) / expected_total
        a = (got + PSEUDO_COUNT) / actual_total
        index += (a - e) * math.log(a / e)
    return index


class ReferenceBuilder:
    """Collects the signals of held-out images through the task's own `observe`, then bins them."""

    def __init__(self, task: Task, labels: Sequence[str]) -> None:
        self.task = task
        self.labels = tuple(labels)
        self.numbers: dict[str, list[float]] = {
            name: [] for name in TASK_SIGNALS[task] if name not in MIX_SIGNALS
        }
        self.mixes: dict[str, np.ndarray] = {
            name: np.zeros(len(self.labels)) for name in TASK_SIGNALS[task] if name in MIX_SIGNALS
        }

    def add(self, image: PreparedImage, observation: Observation) -> None:
        for name, values in numbers_of(image, observation).items():
            self.numbers[name].extend(values)
        for name, weights in observation.mixes.items():
            for index, weight in weights.items():
                self.mixes[name][index] += weight

    def build(self, source: str) -> Reference:
        confidences = self.numbers["confidence"]
        if not confidences:
            raise ValueError("no image was measured")
        signals: dict[str, Histogram | Mix] = {
            name: histogram(values) for name, values in self.numbers.items() if values
        }
        signals.update({name: Mix(counts=tuple(counts.tolist())) for name, counts in self.mixes.items()})
        low = float(np.quantile(confidences, LOW_CONFIDENCE_QUANTILE))
        return Reference(images=len(confidences), source=source, low_confidence=low, signals=signals)


def histogram(values: Iterable[float]) -> Histogram:
    """Counts of `values` between their least value, their deciles and just above their greatest."""
    array = np.asarray(list(values), dtype=np.float64)
    edges = [array.min(), *np.quantile(array, DECILES), np.nextafter(array.max(), math.inf)]
    cuts = np.unique(np.asarray(edges, dtype=np.float64))
    counts = np.bincount(np.searchsorted(cuts, array, side="right"), minlength=len(cuts) + 1)
    return Histogram(cuts=tuple(cuts.tolist()), counts=tuple(float(c) for c in counts))


def _short(value: float) -> str:
    return f"{value:.4g}"


def shares(counts: Sequence[float]) -> list[float]:
    """Counts as fractions of their sum (zeros when empty)."""
    total = sum(counts)
    return [count / total if total else 0.0 for count in counts]
