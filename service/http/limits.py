"""What one request may take: body bytes (its own and a share of what all requests hold), time to send the
body, and time to be answered. Pure ASGI, inside the observability middleware, so every refusal is logged.

A body that is refused, stalls or is cut off, or a chunked body left unread, closes the connection
(`Connection: close`): a client must not go on streaming into a server that has stopped listening.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.core.budget import Budget
from service.core.errors import OverloadedError
from service.http.errors import (
    DeadlineExceededError,
    HttpError,
    PayloadTooLargeError,
    RequestTimeoutError,
    ShuttingDownError,
    rendered_error,
)
from service.http.lifecycle import Lifecycle


@dataclass(frozen=True)
class RequestBounds:
    """Bytes per body, the longest pause inside a body, the longest body, the longest request."""

    max_body_bytes: int
    body_idle_seconds: float
    body_seconds: float
    request_seconds: float


class RequestLimitsMiddleware:
    """Refuse an oversized body by its Content-Length at once, else as it streams past; cut off a body that
    stalls; answer 504 to a request that outlives its deadline."""

    def __init__(self, app: ASGIApp, bounds: RequestBounds, bodies: Budget, lifecycle: Lifecycle) -> None:
        self.app = app
        self.bounds = bounds
        self.bodies = bodies
        self.lifecycle = lifecycle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.bounds.max_body_bytes:
            error = PayloadTooLargeError(
                _too_large(declared, self.bounds.max_body_bytes), detail={"limit": self.bounds.max_body_bytes}
            )
            await send_error(send, scope["path"], error, close=True)
            return
        body = _BodyReader(receive, self, declared, _has_body(scope, declared))
        started = False

        async def watched_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if body.abandoned:
                    message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        try:
            async with asyncio.timeout(self.bounds.request_seconds) as deadline:
                await self.app(scope, body.receive, watched_send)
        except TimeoutError:
            if not deadline.expired():
                raise
            if started:
                return  # an answer cut off mid-way: uvicorn closes the connection and logs it
            error = DeadlineExceededError(
                f"the request took longer than its deadline of {self.bounds.request_seconds:g} s",
                detail={"deadline_seconds": self.bounds.request_seconds},
            )
            await send_error(send, scope["path"], error, close=not body.complete)
        except asyncio.CancelledError:
            # uvicorn cancels what is still running when the shutdown's grace period ends: answered here,
            # that is a 503 to retry elsewhere rather than the 500 uvicorn would send.
            if started or not self.lifecycle.stopping:
                raise
            asyncio.current_task().uncancel()  # type: ignore[union-attr]
            error = ShuttingDownError(
                "the server shut down before this request was answered; send it again",
                headers={"Retry-After": "1"},
            )
            await send_error(send, scope["path"], error, close=True)
        finally:
            self.bodies.release(body.held)


class _BodyReader:
    """The app's `receive`, counting bytes against the limit and the shared budget, within time limits."""

    def __init__(
        self, receive: Receive, limits: RequestLimitsMiddleware, declared: int | None, has_body: bool
    ) -> None:
        self._receive = receive
        self._limits = limits
        self._declared = declared
        self._deadline: float | None = None
        self.complete = not has_body
        self.failed = False
        self.received = 0
        self.held = 0

    @property
    def abandoned(self) -> bool:
        """Whether the body is left unread because it failed, or may go on for ever (chunked): then the
        connection must close rather than read and discard what the client still sends."""
        return not self.complete and (self.failed or self._declared is None)

    async def receive(self) -> Message:
        if self.complete:
            return await self._receive()
        try:
            return await self._receive_body()
        except (HttpError, OverloadedError):
            self.failed = True
            raise

    async def _receive_body(self) -> Message:
        loop = asyncio.get_running_loop()
        bounds = self._limits.bounds
        if self._deadline is None:
            # The body's time starts when the app first asks for it: after the key check, not before.
            self._deadline = loop.time() + bounds.body_seconds
        until = min(loop.time() + bounds.body_idle_seconds, self._deadline)
        message = await self._receive_until(until)
        if message["type"] == "http.disconnect":
            self.complete = True
            return message
        chunk = len(message.get("body", b""))
        self.received += chunk
        if self.received > bounds.max_body_bytes:
            raise PayloadTooLargeError(
                _too_large(self.received, bounds.max_body_bytes), detail={"limit": bounds.max_body_bytes}
            )
        # Charged as the bytes arrive, not as declared: connections that declare the limit and then trickle
        # must not hold the budget that honest uploads need.
        await self._hold(chunk)
        if not message.get("more_body", False):
            self.complete = True
        return message

    async def _receive_until(self, until: float) -> Message:
        lifecycle = self._limits.lifecycle
        try:
            async with asyncio.timeout_at(until) as wait:
                lifecycle.watch(wait)
                try:
                    return await self._receive()
                finally:
                    lifecycle.unwatch(wait)
        except TimeoutError:
            if lifecycle.stopping:
                raise ShuttingDownError(
                    "the server is shutting down and this request's body was still arriving; send it again",
                    headers={"Retry-After": "1"},
                ) from None
            bounds = self._limits.bounds
            stalled = self._deadline is not None and until < self._deadline
            reason = (
                f"no body bytes arrived for {bounds.body_idle_seconds:g} s"
                if stalled
                else f"the body took longer than {bounds.body_seconds:g} s"
            )
            raise RequestTimeoutError(f"{reason}; {self.received} bytes were received") from None

    async def _hold(self, units: int) -> None:
        await self._limits.bodies.acquire(units)
        self.held += units


async def send_error(send: Send, path: str, error: HttpError, *, close: bool) -> None:
    """Answer `error` straight from the middleware, as the app's error handlers would."""
    status, document = rendered_error(path, error.code, error.message, error.detail)
    body = json.dumps(document).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(name.lower().encode(), value.encode()) for name, value in error.headers.items()]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _too_large(size: int, limit: int) -> str:
    return f"request body of {size} bytes is over the limit of {limit} bytes"


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _has_body(scope: Scope, declared: int | None) -> bool:
    if declared is not None:
        return declared > 0
    return any(name == b"transfer-encoding" for name, _ in scope["headers"])
