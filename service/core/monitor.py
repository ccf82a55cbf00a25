"""Drift monitoring of one model version: the signals of the last images it answered, binned like the
reference its file carries and compared with it by the population stability index, plus the confidence of
every image. It runs in the run thread, after the task's finish, never on the event loop."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

from service.core.contract import ModelMetadata
from service.core.imaging import PreparedImage
from service.core.reference import Histogram, Mix, Reference, numbers_of, psi, shares
from service.core.tasks.task import Observation
from service.observability import metrics

# The drift gauges are worked out again at most this often: a scrape every 15 s or more never sees them old.
PUBLISH_SECONDS = 1.0

# One image's share of the window: (signal index, bin, weight) for each value it added.
Contribution = tuple[int, int, float]


@dataclass(frozen=True)
class MonitorConfig:
    """How much traffic each model version's window holds, and how much it needs before it reports."""

    enabled: bool = True
    window: int = 1000
    minimum: int = 200


@dataclass(frozen=True)
class SignalReport:
    """One signal's bins, its reference and window shares per bin, and their PSI (None below the minimum)."""

    name: str
    bins: list[str]
    reference: list[float]
    window: list[float]
    psi: float | None


@dataclass(frozen=True)
class MonitorReport:
    """A model version's window against its reference."""

    images: int
    capacity: int
    minimum: int
    reference: Reference | None
    unfamiliar: int  # images in the window under the reference's low-confidence line
    signals: list[SignalReport]


class DriftMonitor:
    """The window of one model version. `observe` is called from run threads, so it takes a lock."""

    def __init__(self, metadata: ModelMetadata, config: MonitorConfig) -> None:
        self.name = metadata.name
        self.version = str(metadata.version)
        self.labels = metadata.labels
        self.reference = reference = metadata.reference
        self.config = config
        self._signals: list[tuple[str, Histogram | Mix]] = (
            list(reference.signals.items()) if reference else []
        )
        self._counts = [[0.0] * len(signal.counts) for _, signal in self._signals]
        # Per signal: its position, name and how a value finds its bin (None for a mix), looked up once.
        self._plan = [
            (index, name, signal.bin_of if isinstance(signal, Histogram) else None)
            for index, (name, signal) in enumerate(self._signals)
        ]
        self._images: deque[tuple[tuple[Contribution, ...], bool]] = deque()
        self._unfamiliar = 0
        self._lock = threading.Lock()
        self._published = -PUBLISH_SECONDS

    def observe(self, image: PreparedImage, observation: Observation) -> bool | None:
        """Count one answered image; whether it is unfamiliar, or None without a reference to judge by."""
        metrics.observe_confidence(self.name, self.version, observation.confidence)
        if self.reference is None:
            return None
        unfamiliar = observation.confidence < self.reference.low_confidence
        if unfamiliar:
            metrics.count_low_confidence(self.name, self.version)
        added = self._contributions(image, observation)
        with self._lock:
            self._slide(added, unfamiliar)
            now = time.monotonic()
            due = len(self._images) >= self.config.minimum and now - self._published >= PUBLISH_SECONDS
            if due:
                self._published = now
                indices = self._indices()
        if due:
            metrics.set_drift(self.name, self.version, indices)
        return unfamiliar

    def report(self) -> MonitorReport:
        with self._lock:
            counts = [list(bins) for bins in self._counts]
            images, unfamiliar = len(self._images), self._unfamiliar
        ready = images >= self.config.minimum
        signals = [
            SignalReport(
                name,
                signal.bin_names() if isinstance(signal, Histogram) else list(self.labels),
                shares(signal.counts),
                shares(window),
                psi(signal.counts, window) if ready else None,
            )
            for (name, signal), window in zip(self._signals, counts, strict=True)
        ]
        return MonitorReport(
            images, self.config.window, self.config.minimum, self.reference, unfamiliar, signals
        )

    def close(self) -> None:
        """The version stops serving: its drift series go (its counters stay, as counters do)."""
        metrics.forget_drift(self.name, self.version, [name for name, _ in self._signals])

    def _contributions(self, image: PreparedImage, observation: Observation) -> tuple[Contribution, ...]:
        """Where each of the image's values falls: a plain loop over the plan, 1.6 us for a classifier's five
        signals against 3.8 us with an isinstance and a generator per signal."""
        numbers = numbers_of(image, observation)
        mixes = observation.mixes
        added: list[Contribution] = []
        for index, name, bin_of in self._plan:
            if bin_of is None:
                for label, weight in mixes.get(name, {}).items():
                    added.append((index, label, weight))
            else:
                for value in numbers.get(name, ()):
                    added.append((index, bin_of(value), 1.0))
        return tuple(added)

    def _slide(self, added: tuple[Contribution, ...], unfamiliar: bool) -> None:
        if len(self._images) == self.config.window:
            dropped, was_unfamiliar = self._images.popleft()
            for index, position, weight in dropped:
                self._counts[index][position] -= weight
            self._unfamiliar -= was_unfamiliar
        self._images.append((added, unfamiliar))
        for index, position, weight in added:
            self._counts[index][position] += weight
        self._unfamiliar += unfamiliar

    def _indices(self) -> dict[str, float]:
        return {
            name: psi(signal.counts, counts)
            for (name, signal), counts in zip(self._signals, self._counts, strict=True)
        }
