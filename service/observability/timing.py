"""Per-request stage timing: what one request spent decoding, queued, in inference and post-processing.

The one timing API. The HTTP gate `begin`s a request; the engine and the routes time stages with
`stage` (a block) or `record` (a duration measured elsewhere, such as a batch run). Outside a request both
do nothing, so the engine called in-process (benchmarks, training) costs no bookkeeping.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token

STAGES = ("decode", "queue", "inference", "postprocess")

_current: ContextVar[RequestTimings | None] = ContextVar("vision_request_timings", default=None)


class RequestTimings:
    """What one request spent where (seconds, accumulated per stage), for its header, log line and metrics."""

    def __init__(self, request_id: str, route: str) -> None:
        self.request_id = request_id
        self.route = route
        self.model: str | None = None
        self.started = time.perf_counter()
        self.stages: dict[str, float] = {}
        # Decoding runs in worker threads; several may add to the same stage at once.
        self._lock = threading.Lock()

    def add(self, name: str, seconds: float) -> None:
        with self._lock:
            self.stages[name] = self.stages.get(name, 0.0) + seconds

    def snapshot(self) -> dict[str, float]:
        """Stage durations in ms (3 decimals), known stages first, then `total` since the request began."""
        total = time.perf_counter() - self.started
        with self._lock:
            stages = dict(self.stages)
        ordered = [name for name in STAGES if name in stages] + sorted(set(stages) - set(STAGES))
        snapshot = {name: round(stages[name] * 1000, 3) for name in ordered}
        snapshot["total"] = round(total * 1000, 3)
        return snapshot


def begin(request_id: str, route: str) -> tuple[RequestTimings, Token[RequestTimings | None]]:
    """Start timing a request in this context; pass the token to `end`."""
    timings = RequestTimings(request_id, route)
    return timings, _current.set(timings)


def end(token: Token[RequestTimings | None]) -> None:
    _current.reset(token)


def current() -> RequestTimings | None:
    """The timings of the request being handled: in its handler and code awaited or run in threads from it."""
    return _current.get()


def use_model(key: str) -> None:
    """Name the model version (`name:version`) the current request runs on."""
    timings = _current.get()
    if timings is not None:
        timings.model = key


def record(name: str, seconds: float) -> None:
    """Add `seconds` of stage `name` to the current request."""
    timings = _current.get()
    if timings is not None:
        timings.add(name, seconds)


@contextmanager
def stage(name: str) -> Iterator[None]:
    """Time the block (awaits included) as stage `name` of the current request."""
    started = time.perf_counter()
    try:
        yield
    finally:
        record(name, time.perf_counter() - started)


def server_timing(snapshot: dict[str, float]) -> str:
    """The `Server-Timing` header value of a snapshot."""
    return ", ".join(f"{name};dur={duration:.3f}" for name, duration in snapshot.items())
