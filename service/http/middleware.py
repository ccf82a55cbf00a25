"""The request middleware: request id in and out, Server-Timing, one access log line, request metrics."""

from __future__ import annotations

import os
import random
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.observability import metrics, timing
from service.observability.logs import access_level, log_access

REQUEST_ID_HEADER = "X-Request-ID"
# Where the middleware leaves the id in the ASGI scope: the 500 handler runs outside the middleware.
_SCOPE_REQUEST_ID = "vision.request_id"
UNMATCHED_ROUTE = "<unmatched>"

_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
# Request ids: a generator of our own (seeded from os.urandom, again in a forked child), immune to anyone
# seeding the global one. uuid4 layout: version nibble 4, variant bits 10.
_ids = random.Random()
os.register_at_fork(after_in_child=_ids.seed)
_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)


def new_request_id() -> str:
    """A random uuid4 as 32 hex digits; not via os.urandom, whose syscall gives the GIL away each request."""
    return f"{(_ids.getrandbits(128) & _UUID4_CLEAR) | _UUID4_SET:032x}"


def request_id_of(scope: Scope) -> str | None:
    """The id the request is logged under, also after the middleware has let go of it."""
    return scope.get(_SCOPE_REQUEST_ID)


class ObservabilityMiddleware:
    """Pure ASGI, outermost: times the request, tags its response and logs and counts it once."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        timings, token = timing.begin(_incoming_request_id(scope) or new_request_id(), scope["path"])
        scope[_SCOPE_REQUEST_ID] = timings.request_id
        snapshot: dict[str, float] | None = None
        status = 500
        finished = False

        def finish() -> None:
            nonlocal snapshot, finished
            if finished:
                return
            finished = True
            if snapshot is None:
                snapshot = timings.snapshot()
            timings.route = _route_template(scope)
            _record(scope, status, timings, snapshot)

        held_start: Message | None = None

        async def send_with_headers(message: Message) -> None:
            nonlocal snapshot, status, held_start
            if message["type"] == "http.response.start":
                status = message["status"]
                snapshot = timings.snapshot()
                # Held until the body is ready: a handler that fails before its first byte still gets a
                # clean 500, and the log line is written first. (On the wire, service.http.server writes
                # head and body in one go.)
                held_start = _with_headers(message, timings.request_id, snapshot)
                return
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                # Log before any byte leaves: once a client has its answer, the line is already written.
                finish()
            if held_start is not None:
                start, held_start = held_start, None
                await send(start)
            await send(message)

        metrics.IN_PROGRESS.inc()
        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            # Whatever the app had begun to answer, Starlette's error handler now answers 500.
            status = 500
            raise
        finally:
            metrics.IN_PROGRESS.dec()
            timing.end(token)
            finish()


def _incoming_request_id(scope: Scope) -> str | None:
    for key, value in scope["headers"]:
        if key == b"x-request-id":
            candidate = value.decode("latin-1")
            return candidate if _SANE_REQUEST_ID.fullmatch(candidate) else None
    return None


def _with_headers(message: Message, request_id: str, snapshot: dict[str, float]) -> Message:
    headers = [(key, value) for key, value in message.get("headers", []) if key.lower() != b"x-request-id"]
    headers.append((b"x-request-id", request_id.encode("latin-1")))
    headers.append((b"server-timing", timing.server_timing(snapshot).encode("latin-1")))
    return {**message, "headers": headers}


def _route_template(scope: Scope) -> str:
    # The template, never the raw path: ids in paths would explode the metrics' label sets.
    route = scope.get("route")
    return getattr(route, "path_format", None) or getattr(route, "path", None) or UNMATCHED_ROUTE


def _record(scope: Scope, status: int, timings: timing.RequestTimings, snapshot: dict[str, float]) -> None:
    metrics.record_request(
        timings.route, scope["method"], status, snapshot["total"] / 1000, timings.stages, timings.model
    )
    level = access_level(timings.route)
    if level is None:
        return
    client = scope.get("client")
    log_access(
        level,
        {
            "request_id": timings.request_id,
            "method": scope["method"],
            "route": timings.route,
            "status": status,
            "model": timings.model,
            "duration_ms": snapshot["total"],
            "stages_ms": {name: duration for name, duration in snapshot.items() if name != "total"},
            "client": client[0] if client else None,
        },
    )
