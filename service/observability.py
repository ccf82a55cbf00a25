"""Request ids, per-stage timings (Server-Timing, one JSON log line per request), Prometheus metrics."""

from __future__ import annotations

import json
import logging
import os
import random
import re
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics import MetricWrapperBase
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STAGES = ("decode", "queue", "inference", "postprocess")
REQUEST_ID_HEADER = "X-Request-ID"
# Where the middleware leaves the id in the ASGI scope: the 500 handler runs outside the middleware.
_SCOPE_REQUEST_ID = "vision.request_id"
_LOGGED_MARK = "_vision_logged"
UNMATCHED_ROUTE = "<unmatched>"
NO_MODEL = "none"
# Probes and scrapes arrive every few seconds; their access lines are DEBUG so they do not drown real traffic.
QUIET_ROUTES = frozenset(
    {"/healthz/live", "/healthz/ready", "/metrics", "/v2/health/live", "/v2/health/ready"}
)

_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
_current: ContextVar[RequestTimings | None] = ContextVar("vision_request_timings", default=None)

access_logger = logging.getLogger("vision.access")

# Module-level collectors in the default registry: create_app() may run many times per process (tests), the
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
# Request ids: a generator of our own (seeded from os.urandom, again in a forked child), immune to anyone
# seeding the global one. uuid4 layout: version nibble 4, variant bits 10.
_ids = random.Random()
os.register_at_fork(after_in_child=_ids.seed)
_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)


class RequestTimings:
    """What one request spent where (seconds, accumulated per stage), for its header, log line and metrics."""

    def __init__(self, request_id: str, route: str) -> None:
        self.request_id = request_id
        self.route = route
        self.model: str | None = None
        self.stages: dict[str, float] = {}
        self.stage_models: dict[str, str] = {}
        # Decoding runs in worker threads; several may add to the same stage at once.
        self._lock = threading.Lock()

    def add(self, name: str, seconds: float) -> None:
        with self._lock:
            self.stages[name] = self.stages.get(name, 0.0) + seconds

    def copy_stages(self) -> dict[str, float]:
        with self._lock:
            return dict(self.stages)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - started)


def _child(metric: MetricWrapperBase, *values: str) -> Any:
    key = (metric, values)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*values)
    return child


def new_request_id() -> str:
    """A random uuid4 as 32 hex digits; not via os.urandom, whose syscall gives the GIL away each request."""
    return f"{(_ids.getrandbits(128) & _UUID4_CLEAR) | _UUID4_SET:032x}"


def request_id_of(scope: Scope) -> str | None:
    """The id the request is logged under, also after the middleware has let go of it."""
    return scope.get(_SCOPE_REQUEST_ID)


def current_timings() -> RequestTimings | None:
    """The timings of the request being handled: in its handler and code awaited or run in threads from it."""
    return _current.get()


def record_stage(stage: str, model: str, seconds: float) -> None:
    """Add `seconds` of `stage` to the current request; the histogram sees the total at the end."""
    timings = _current.get()
    if timings is None:
        _child(STAGE_DURATION, stage, model).observe(seconds)
        return
    timings.stage_models[stage] = model
    timings.add(stage, seconds)


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


def install(app: FastAPI) -> None:
    """Wrap `app` in the request middleware (outermost) and serve `GET /metrics`."""
    app.add_middleware(ObservabilityMiddleware)
    app.add_api_route("/metrics", metrics_endpoint, methods=["GET"], include_in_schema=False)


async def metrics_endpoint(request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


class ObservabilityMiddleware:
    """Pure ASGI: request id in and out, Server-Timing, one access log line and the request metrics."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        timings = RequestTimings(_incoming_request_id(scope) or new_request_id(), scope["path"])
        scope[_SCOPE_REQUEST_ID] = timings.request_id
        started = time.perf_counter()
        snapshot: dict[str, float] | None = None
        status = 500
        finished = False

        def finish() -> None:
            nonlocal snapshot, finished
            if finished:
                return
            finished = True
            if snapshot is None:
                snapshot = timing_snapshot(timings, time.perf_counter() - started)
            timings.route = _route_template(scope)
            _record(scope["method"], status, timings, snapshot)
            _log_access(scope, status, timings, snapshot)

        held_start: Message | None = None

        async def send_with_headers(message: Message) -> None:
            nonlocal snapshot, status, held_start
            if message["type"] == "http.response.start":
                status = message["status"]
                snapshot = timing_snapshot(timings, time.perf_counter() - started)
                # Held until the body is ready, so headers and body leave back to back: a replica killed
                # between the two would leave the proxy with a response it can neither finish nor retry.
                held_start = _with_headers(message, timings.request_id, snapshot)
                return
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                # Log before any byte leaves: once a client has its answer, the line is already written.
                finish()
            if held_start is not None:
                start, held_start = held_start, None
                await send(start)
            await send(message)

        token = _current.set(timings)
        IN_PROGRESS.inc()
        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            # Whatever the app had begun to answer, Starlette's error handler now answers 500.
            status = 500
            raise
        finally:
            IN_PROGRESS.dec()
            _current.reset(token)
            finish()


def timing_snapshot(timings: RequestTimings, total_seconds: float) -> dict[str, float]:
    """Stage durations in ms (3 decimals), known stages first, then `total`: shared by header and log."""
    stages = timings.copy_stages()
    ordered = [name for name in STAGES if name in stages] + sorted(set(stages) - set(STAGES))
    snapshot = {name: round(stages[name] * 1000, 3) for name in ordered}
    snapshot["total"] = round(total_seconds * 1000, 3)
    return snapshot


def server_timing(snapshot: dict[str, float]) -> str:
    return ", ".join(f"{name};dur={duration:.3f}" for name, duration in snapshot.items())


def _incoming_request_id(scope: Scope) -> str | None:
    for key, value in scope["headers"]:
        if key == b"x-request-id":
            candidate = value.decode("latin-1")
            return candidate if _SANE_REQUEST_ID.fullmatch(candidate) else None
    return None


def _with_headers(message: Message, request_id: str, snapshot: dict[str, float]) -> Message:
    headers = [(key, value) for key, value in message.get("headers", []) if key.lower() != b"x-request-id"]
    headers.append((b"x-request-id", request_id.encode("latin-1")))
    headers.append((b"server-timing", server_timing(snapshot).encode("latin-1")))
    return {**message, "headers": headers}


def _route_template(scope: Scope) -> str:
    # The template, never the raw path: ids in paths would explode the metrics' label sets.
    route = scope.get("route")
    return getattr(route, "path_format", None) or getattr(route, "path", None) or UNMATCHED_ROUTE


def _record(method: str, status: int, timings: RequestTimings, snapshot: dict[str, float]) -> None:
    _child(REQUESTS, timings.route, method, str(status)).inc()
    _child(REQUEST_DURATION, timings.route).observe(snapshot["total"] / 1000)
    for stage, seconds in timings.stages.items():
        model = timings.stage_models.get(stage) or timings.model or NO_MODEL
        _child(STAGE_DURATION, stage, model).observe(seconds)


def _log_access(scope: Scope, status: int, timings: RequestTimings, snapshot: dict[str, float]) -> None:
    level = logging.DEBUG if timings.route in QUIET_ROUTES else logging.INFO
    if not access_logger.isEnabledFor(level):
        return
    stages = {name: duration for name, duration in snapshot.items() if name != "total"}
    client = scope.get("client")
    fields = {
        "request_id": timings.request_id,
        "method": scope["method"],
        "route": timings.route,
        "status": status,
        "model": timings.model,
        "duration_ms": snapshot["total"],
        "stages_ms": stages,
        "client": client[0] if client else None,
    }
    access_logger.log(level, "%s %s %d", scope["method"], timings.route, status, extra={"fields": fields})


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then any structured `fields`."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """Human-readable lines for a terminal, with the structured fields as key=value pairs."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = getattr(record, "fields", None)
        if fields:
            line += " " + " ".join(f"{key}={json.dumps(value, default=str)}" for key, value in fields.items())
        return line


def mark_logged(exc: BaseException) -> None:
    """Note that `exc` has been logged with its request id, so uvicorn's copy of it can be dropped."""
    setattr(exc, _LOGGED_MARK, True)


class _DropAlreadyLogged(logging.Filter):
    """Starlette re-raises a handled 500's exception and uvicorn logs it again, without the request id."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not getattr(error, _LOGGED_MARK, False)


def configure_logging(level: str, fmt: Literal["json", "text"]) -> None:
    """Send every record (uvicorn's included) to stderr as JSON lines or text; idempotent."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "vision_handler", False)]:
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.vision_handler = True  # type: ignore[attr-defined]
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    # uvicorn installs its own handlers before it imports the app; route its records through ours instead.
    for name in ("uvicorn", "uvicorn.error"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    uvicorn_errors = logging.getLogger("uvicorn.error")
    for duplicate in [f for f in uvicorn_errors.filters if isinstance(f, _DropAlreadyLogged)]:
        uvicorn_errors.removeFilter(duplicate)
    uvicorn_errors.addFilter(_DropAlreadyLogged())
    # Our access line replaces uvicorn's, which lacks request id, route template and timings.
    logging.getLogger("uvicorn.access").disabled = True
