"""A model version's drift window: it slides, reports only past its minimum, judges images unfamiliar, and
publishes its gauges and counters."""

from __future__ import annotations

import threading

import pytest
from conftest import encode, solid
from prometheus_client import REGISTRY

from service.api.terms import InputSpec
from service.core.contract import ModelMetadata
from service.core.imaging import ImageLimits, PreparedImage, prepare_image
from service.core.monitor import DriftMonitor, MonitorConfig
from service.core.reference import Histogram, Mix, Reference
from service.core.tasks.task import Observation

REFERENCE = Reference(
    images=100,
    source="hand-made",
    low_confidence=0.5,
    signals={
        "confidence": Histogram(cuts=(0.5, 0.9), counts=(1, 9, 90)),
        "class": Mix(counts=(50, 25, 25)),
    },
)


def metadata(name: str, reference: Reference | None = REFERENCE) -> ModelMetadata:
    return ModelMetadata(
        schema_version="1",
        task="classify",
        name=name,
        version=3,
        labels=("red", "green", "blue"),
        input=InputSpec(name="image", height=8, width=8, channels=3),
        resize="stretch",
        outputs={"probabilities": "probs"},
        reference=reference,
    )


def image() -> PreparedImage:
    data = encode(solid((200, 10, 10), (16, 8)), "PNG")
    return prepare_image(
        data, width=8, height=8, channels=3, resize="stretch", limits=ImageLimits(1 << 20, 1 << 20)
    )


def answer(confidence: float, label: int) -> Observation:
    return Observation(confidence, {}, {"class": {label: 1.0}})


def sample(metric: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(metric, labels)


def test_the_window_holds_the_last_images_and_reports_only_past_its_minimum() -> None:
    monitor = DriftMonitor(metadata("window"), MonitorConfig(window=20, minimum=10))
    for _ in range(9):
        monitor.observe(image(), answer(0.95, 0))
    early = monitor.report()
    assert early.images == 9
    assert all(signal.psi is None for signal in early.signals)
    for _ in range(30):
        monitor.observe(image(), answer(0.95, 2))
    late = monitor.report()
    assert (late.images, late.capacity, late.minimum) == (20, 20, 10)
    by_name = {signal.name: signal for signal in late.signals}
    # Only the last 20 are counted: every one of them said blue.
    assert by_name["class"].window == [0.0, 0.0, 1.0]
    assert by_name["class"].reference == [0.5, 0.25, 0.25]
    assert by_name["class"].bins == ["red", "green", "blue"]
    assert by_name["class"].psi > 0.2
    assert by_name["confidence"].bins == ["< 0.5", "0.5 to 0.9", ">= 0.9"]


def test_traffic_like_the_reference_is_stable() -> None:
    monitor = DriftMonitor(metadata("steady"), MonitorConfig(window=100, minimum=100))
    for index in range(100):
        confidence = 0.4 if index == 0 else 0.7 if index < 10 else 0.95
        monitor.observe(image(), answer(confidence, 0 if index % 4 < 2 else index % 4 - 1))
    signals = {signal.name: signal.psi for signal in monitor.report().signals}
    assert signals["confidence"] < 0.01
    assert signals["class"] < 0.01
    # Every test image has the same size and colour, measured on nothing else: no reference bins for them.
    assert set(signals) == {"confidence", "class"}


def test_an_image_under_the_low_confidence_line_is_unfamiliar_and_counted() -> None:
    monitor = DriftMonitor(metadata("judged"), MonitorConfig(window=10, minimum=1))
    before = sample("vision_low_confidence_total", model="judged", version="3") or 0
    assert monitor.observe(image(), answer(0.49, 0)) is True
    assert monitor.observe(image(), answer(0.5, 0)) is False
    assert monitor.report().unfamiliar == 1
    assert sample("vision_low_confidence_total", model="judged", version="3") == before + 1
    assert sample("vision_prediction_confidence_count", model="judged", version="3") == 2
    assert sample("vision_prediction_confidence_bucket", model="judged", version="3", le="0.5") == 2


def test_without_a_reference_there_is_no_judgement_but_confidence_is_still_counted() -> None:
    monitor = DriftMonitor(metadata("foreign", reference=None), MonitorConfig(window=10, minimum=1))
    assert monitor.observe(image(), answer(0.1, 0)) is None
    report = monitor.report()
    assert (report.reference, report.signals, report.images) == (None, [], 0)
    assert sample("vision_prediction_confidence_count", model="foreign", version="3") == 1


def test_the_drift_gauges_are_published_past_the_minimum_and_removed_with_the_version() -> None:
    monitor = DriftMonitor(metadata("published"), MonitorConfig(window=50, minimum=5))
    for _ in range(4):
        monitor.observe(image(), answer(0.95, 1))
    assert sample("vision_drift_psi", model="published", version="3", signal="class") is None
    monitor.observe(image(), answer(0.95, 1))
    published = sample("vision_drift_psi", model="published", version="3", signal="class")
    assert published == pytest.approx(next(s.psi for s in monitor.report().signals if s.name == "class"))
    monitor.close()
    assert sample("vision_drift_psi", model="published", version="3", signal="class") is None
    assert sample("vision_drift_psi", model="published", version="3", signal="confidence") is None


def test_run_threads_observing_at_once_lose_no_image() -> None:
    monitor = DriftMonitor(metadata("threads"), MonitorConfig(window=100_000, minimum=1))
    prepared = image()

    def observe() -> None:
        for index in range(2000):
            monitor.observe(prepared, answer(0.95, index % 3))

    threads = [threading.Thread(target=observe) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    report = monitor.report()
    assert report.images == 8000
    assert next(s for s in report.signals if s.name == "class").window == pytest.approx([1 / 3] * 3, abs=1e-3)
