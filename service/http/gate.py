"""The gate: the one pass every HTTP request makes, in one coroutine.

A request gets its id and its timings; a body declared over the limit is refused before a byte of it is
read; the body is read within its limits (service.http.limits) under the request's one timer. A task route
(`FastRoute`) is answered right here: its key check, its options, its uploads, the engine, its answer. Every
other request goes on to FastAPI. Each answer leaves with the request id and `Server-Timing`, and is counted
and logged once, whether it came from a task route, FastAPI or the gate's own refusals.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
from collections.abc import Iterable, Iterator
from typing import Any

from fastapi import FastAPI
from starlette.requests import Request
from starlette.routing import BaseRoute, Match, get_route_path
from starlette.types import Message, Receive, Scope, Send

from service.core.budget import Budget
from service.http.errors import SCOPE_REQUEST_ID, ShuttingDownError, answer_for
from service.http.lifecycle import Lifecycle
from service.http.limits import Body, RequestBounds
from service.http.routes.dependencies import FastRoute
from service.observability import metrics, timing
from service.observability.logs import access_level, log_access

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


class GatedApp(FastAPI):
    """FastAPI behind the gate: every request passes `__call__` once; the task routes end there."""

    def __init__(self, *, bounds: RequestBounds, bodies: Budget, lifecycle: Lifecycle, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bounds = bounds
        self.bodies = bodies
        self.lifecycle = lifecycle
        self._task_routes: dict[tuple[str, str], FastRoute] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        await _Exchange(self, scope, receive, send).run()

    def answer_in_gate(self, routes: Iterable[BaseRoute]) -> None:
        """Answer these routes' requests in the gate: the `FastRoute`s among them, which need no FastAPI."""
        for route in routes:
            if isinstance(route, FastRoute):
                self._task_routes.update({(method, route.path): route for method in route.methods})

    def task_route(self, scope: Scope) -> FastRoute | None:
        """The task route a request is for, if it is one, and no middleware was added to the app (CORS):
        middleware must see every request, so then the task routes go through FastAPI too."""
        if self.user_middleware:
            return None
        return self._task_routes.get((scope["method"], get_route_path(scope)))

    async def forward(self, scope: Scope, receive: Receive, send: Send) -> None:
        """On to FastAPI: its middleware, router and error handlers."""
        await super().__call__(scope, receive, send)

    def route_template(self, scope: Scope) -> str:
        """The route's template, never the raw path: ids in paths would explode the metrics' label sets.
        A request refused before routing is matched here, so its refusal counts under its route."""
        route = scope.get("route")
        if route is None:
            route = next(
                (r for r in _every_route(self.router.routes) if r.matches(scope)[0] == Match.FULL), None
            )
        return getattr(route, "path_format", None) or getattr(route, "path", None) or UNMATCHED_ROUTE


class _Exchange:
    """One request and its answer, from the first header to the last body byte."""

    def __init__(self, app: GatedApp, scope: Scope, receive: Receive, send: Send) -> None:
        self.app = app
        self.scope = scope
        self.send = send
        self.timings, self._token = timing.begin(
            _incoming_request_id(scope) or new_request_id(), scope["path"]
        )
        scope[SCOPE_REQUEST_ID] = self.timings.request_id
        self.body = Body(receive, scope, app.bounds, app.bodies, app.lifecycle)
        self.status = 500
        self.on_wire = False
        self._held: Message | None = None
        self._snapshot: dict[str, float] | None = None
        self._finished = False

    async def run(self) -> None:
        metrics.IN_PROGRESS.inc()
        try:
            await self._serve()
        except Exception:
            # An answer cut off mid-way: counted as the failure it is.
            self.status = 500
            raise
        finally:
            metrics.IN_PROGRESS.dec()
            timing.end(self._token)
            self.body.release()
            self._finish()

    async def _serve(self) -> None:
        refusal = self.body.declared_too_large()
        if refusal is not None:
            await self._answer_error(refusal, close=True)
            return
        route = self.app.task_route(self.scope)
        try:
            async with asyncio.timeout(self.app.bounds.request_seconds) as timer:
                self.body.bound_by(timer)
                if route is None:
                    await self._forward()
                else:
                    await self._answer_task(route)
        except TimeoutError:
            if not timer.expired():
                raise
            if self.on_wire:
                return  # an answer cut off mid-way: uvicorn closes the connection and logs it
            await self._answer_error(self.body.expired(), close=not self.body.complete)
        except asyncio.CancelledError:
            # uvicorn cancels what is still running when the shutdown's grace period ends: answered here,
            # that is a 503 to retry elsewhere rather than the 500 uvicorn would send.
            if self.on_wire or not self.app.lifecycle.stopping:
                raise
            asyncio.current_task().uncancel()  # type: ignore[union-attr]
            error = ShuttingDownError(
                "the server shut down before this request was answered; send it again",
                headers={"Retry-After": "1"},
            )
            await self._answer_error(error, close=True)

    async def _forward(self) -> None:
        try:
            await self.app.forward(self.scope, self.body.receive, self._send)
        except Exception as exc:
            # Starlette's error handler answers 500 only if no answer had begun; one held here has not left.
            if self.on_wire:
                raise
            await self._answer_error(exc, close=self.body.abandoned)

    async def _answer_task(self, route: FastRoute) -> None:
        scope = self.scope
        scope["app"] = self.app
        scope["route"] = route
        scope["endpoint"] = route.endpoint
        try:
            response = await route.handler(Request(scope, self.body.receive))
        except Exception as exc:
            await self._answer_error(exc, close=self.body.abandoned)
            return
        await response(scope, self.body.receive, self._send)

    async def _answer_error(self, exc: Exception, *, close: bool) -> None:
        answer = answer_for(exc, self.scope["path"], self.timings.request_id, self.scope["method"])
        response = answer.response()
        if close:
            response.headers["connection"] = "close"
        await response(self.scope, self.body.receive, self._send)

    async def _send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            self._snapshot = self.timings.snapshot()
            # Held until the body is ready: a handler that fails before its first byte still gets a clean
            # 500, and the log line is written first. (On the wire, service.http.server writes head and body
            # in one go.)
            self._held = self._tagged(message)
            return
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            # Log before any byte leaves: once a client has its answer, the line is already written.
            self._finish()
        if self._held is not None:
            start, self._held = self._held, None
            self.on_wire = True
            await self.send(start)
        await self.send(message)

    def _tagged(self, start: Message) -> Message:
        headers = [(key, value) for key, value in start.get("headers", []) if key.lower() != b"x-request-id"]
        headers.append((b"x-request-id", self.timings.request_id.encode("latin-1")))
        headers.append((b"server-timing", timing.server_timing(self._snapshot or {}).encode("latin-1")))
        if self.body.abandoned and (b"connection", b"close") not in headers:
            headers.append((b"connection", b"close"))
        return {**start, "headers": headers}

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        timings = self.timings
        snapshot = self._snapshot or timings.snapshot()
        timings.route = self.app.route_template(self.scope)
        metrics.record_request(
            "http",
            timings.route,
            self.scope["method"],
            self.status,
            snapshot["total"] / 1000,
            timings.stages,
            timings.model,
        )
        level = access_level(timings.route)
        if level is None:
            return
        client = self.scope.get("client")
        log_access(
            level,
            {
                "request_id": timings.request_id,
                "method": self.scope["method"],
                "route": timings.route,
                "status": self.status,
                "model": timings.model,
                "duration_ms": snapshot["total"],
                "stages_ms": {name: duration for name, duration in snapshot.items() if name != "total"},
                "client": client[0] if client else None,
            },
        )


def _every_route(routes: Iterable[BaseRoute]) -> Iterator[BaseRoute]:
    """Each route, those of included routers too: FastAPI keeps an included router as one entry that
    refers to the router (`original_router`) and matches without naming the route."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is None:
            yield route
        else:
            yield from _every_route(included.routes)


def _incoming_request_id(scope: Scope) -> str | None:
    for key, value in scope["headers"]:
        if key == b"x-request-id":
            candidate = value.decode("latin-1")
            return candidate if _SANE_REQUEST_ID.fullmatch(candidate) else None
    return None
