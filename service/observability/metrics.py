"""Prometheus metrics: request counts and durations, stage durations, batches, queues and loaded models."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.metrics import MetricWrapperBase

NO_MODEL = "none"
METRICS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"

# Module-level collectors in the default registry: an app may be built many times per process (tests), the
# collectors are created once. Under `vision-service --workers N` (service.http.workers) their values live in
# files of the directory PROMETHEUS_MULTIPROC_DIR names, and a scrape adds up every worker's.
# `protocol` is http or grpc; a gRPC call's route is its method's path and its status the gRPC code's name.
REQUESTS = Counter(
    "vision_requests", "Requests answered, over HTTP and gRPC.", ["protocol", "route", "method", "status"]
)
REQUEST_DURATION = Histogram(
    "vision_request_duration_seconds",
    "Time from request start to response start.",
    ["protocol", "route"],
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
# With `--workers`, each gauge says how the workers' values combine: queues and requests in progress add
# up over the live workers; every worker loads the same repository, so the loaded models are the same.
QUEUE_DEPTH = Gauge(
    "vision_queue_depth", "Images waiting for an inference run.", ["model"], multiprocess_mode="livesum"
)
MODELS_LOADED = Gauge(
    "vision_models_loaded",
    "Model versions loaded and serving (1 per version).",
    ["model", "version", "task", "provider"],
    multiprocess_mode="livemax",
)
MODEL_LOAD_FAILURES = Gauge(
    "vision_model_load_failures",
    "Model files refused at the last repository load.",
    multiprocess_mode="livemax",
)
# Drift monitoring (service.core.monitor), per model version. With workers, each process has its own window:
# the gauge shows the worst of them, the counters add up.
DRIFT_PSI = Gauge(
    "vision_drift_psi",
    "Population stability index of a signal over the model version's last images against its reference.",
    ["model", "version", "signal"],
    multiprocess_mode="livemax",
)
PREDICTION_CONFIDENCE = Histogram(
    "vision_prediction_confidence",
    "Confidence of each answered image: top-1 probability, best box score, or mean pixel probability.",
    ["model", "version"],
    buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999),
)
LOW_CONFIDENCE = Counter(
    "vision_low_confidence",
    "Images whose confidence is under the 1st percentile of the model's reference (answered unfamiliar).",
    ["model", "version"],
)
READY = Gauge(
    "vision_ready",
    "1 while /healthz/ready answers 200 (every default model loaded, not draining), else 0; worked out "
    "at each readiness probe and scrape.",
    multiprocess_mode="livemax",
)
IN_PROGRESS = Gauge(
    "vision_requests_in_progress", "HTTP requests being handled now.", multiprocess_mode="livesum"
)
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
    protocol: str,
    route: str,
    method: str,
    status: int | str,
    seconds: float,
    stages: Mapping[str, float],
    model: str | None,
) -> None:
    """One answered request: its count, its duration and the seconds of each stage it went through."""
    _child(REQUESTS, protocol, route, method, str(status)).inc()
    _child(REQUEST_DURATION, protocol, route).observe(seconds)
    for stage, stage_seconds in stages.items():
        _child(STAGE_DURATION, stage, model or NO_MODEL).observe(stage_seconds)


def observe_batch(model: str, size: int) -> None:
    _child(BATCH_SIZE, model).observe(size)


def set_queue_depth(model: str, depth: int) -> None:
    _child(QUEUE_DEPTH, model).set(depth)


def observe_confidence(model: str, version: str, confidence: float) -> None:
    _child(PREDICTION_CONFIDENCE, model, version).observe(confidence)


def count_low_confidence(model: str, version: str) -> None:
    _child(LOW_CONFIDENCE, model, version).inc()


def set_drift(model: str, version: str, indices: Mapping[str, float]) -> None:
    for signal, index in indices.items():
        _child(DRIFT_PSI, model, version, signal).set(index)


def forget_drift(model: str, version: str, signals: Iterable[str]) -> None:
    """Remove a retired model version's drift series (zeroed first: with workers, their files outlive it)."""
    for signal in signals:
        child = _children.pop((DRIFT_PSI, (model, version, signal)), None)
        if child is not None:
            child.set(0)
            DRIFT_PSI.remove(model, version, signal)


_loaded: set[tuple[str, str, str, str]] = set()


def set_models_loaded(models: Iterable[tuple[str, int, str, str]]) -> None:
    """Replace the loaded-model series with these (name, version, task, provider) tuples."""
    now = {(name, str(version), task, provider) for name, version, task, provider in models}
    for labels in _loaded - now:
        # Zeroed first: with workers, the series' file outlives its removal from this process.
        MODELS_LOADED.labels(*labels).set(0)
        MODELS_LOADED.remove(*labels)
    for labels in now:
        MODELS_LOADED.labels(*labels).set(1)
    _loaded.clear()
    _loaded.update(now)


def set_ready(ready: bool) -> None:
    READY.set(1 if ready else 0)


def set_model_load_failures(count: int) -> None:
    MODEL_LOAD_FAILURES.set(count)


def exposition() -> tuple[bytes, str]:
    """Every metric in the Prometheus text format (every worker's, added up), and its content type."""
    if METRICS_DIR_VARIABLE not in os.environ:
        return generate_latest(), CONTENT_TYPE_LATEST
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return generate_latest(registry), CONTENT_TYPE_LATEST
