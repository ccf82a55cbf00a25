"""Prometheus metrics: request counts and durations, stage durations, batches, queues and loaded models."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase

NO_MODEL = "none"

# Module-level collectors in the default registry: an app may be built many times per process (tests), the
# collectors are created once. One process per container; scale with replicas, not uvicorn --workers.
REQUESTS = Counter("vision_requests", "HTTP requests answered.", ["route", "method", "status"])
REQUEST_DURATION = Histogram(
    "vision_request_duration_seconds",
    "Time from request start to response start.",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
STAGE_DURATION = Histogram(
    "vision_stage_duration_seconds",
    "Time one request spent in a stage: decode, queue, inference, postprocess.",
    ["stage", "model"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
BATCH_SIZE = Histogram(
    "vision_batch_size", "Images per inference run.", ["model"], buckets=(1, 2, 4, 8, 16, 32, 64)
)
QUEUE_DEPTH = Gauge("vision_queue_depth", "Images waiting for an inference run.", ["model"])
MODELS_LOADED = Gauge(
    "vision_models_loaded",
    "Model versions loaded and serving (1 per version).",
    ["model", "version", "task", "provider"],
)
MODEL_LOAD_FAILURES = Gauge("vision_model_load_failures", "Model files refused at the last repository load.")
IN_PROGRESS = Gauge("vision_requests_in_progress", "HTTP requests being handled now.")
# Labelled children of the per-request collectors above (never cleared, so a child stays valid): `labels()`
# validates and locks on every call, several times per request.
_children: dict[tuple[MetricWrapperBase, tuple[str, ...]], Any] = {}


def _child(metric: MetricWrapperBase, *values: str) -> Any:
    key = (metric, values)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*values)
    return child


def record_request(
    route: str, method: str, status: int, seconds: float, stages: Mapping[str, float], model: str | None
) -> None:
    """One answered request: its count, its duration and the seconds of each stage it went through."""
    _child(REQUESTS, route, method, str(status)).inc()
    _child(REQUEST_DURATION, route).observe(seconds)
    for stage, stage_seconds in stages.items():
        _child(STAGE_DURATION, stage, model or NO_MODEL).observe(stage_seconds)


def observe_batch(model: str, size: int) -> None:
    _child(BATCH_SIZE, model).observe(size)


def set_queue_depth(model: str, depth: int) -> None:
    _child(QUEUE_DEPTH, model).set(depth)


def set_models_loaded(models: Iterable[tuple[str, int, str, str]]) -> None:
    """Replace the loaded-model series with these (name, version, task, provider) tuples."""
    MODELS_LOADED.clear()
    for name, version, task, provider in models:
        MODELS_LOADED.labels(model=name, version=str(version), task=task, provider=provider).set(1)


def set_model_load_failures(count: int) -> None:
    MODEL_LOAD_FAILURES.set(count)


def exposition() -> tuple[bytes, str]:
    """Every metric in the Prometheus text format, and its content type."""
    return generate_latest(), CONTENT_TYPE_LATEST
