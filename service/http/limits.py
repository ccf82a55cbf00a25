"""What one request may take: body bytes (its own and a share of what all requests hold), time to send the
body, and time to be answered; the gate (service.http.gate) reads every body through `Body`.

One timer bounds the request: the deadline, brought forward to the body's idle and total limits while the
app waits for body bytes, and to the shutdown's grace when the server stops. A body that is refused, stalls
or is cut off, or a chunked body left unread, closes the connection (`Connection: close`): a client must not
go on streaming into a server that has stopped listening.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from starlette.types import Message, Receive, Scope

from service.core.budget import Budget
from service.core.errors import OverloadedError
from service.http.errors import (
    DeadlineExceededError,
    HttpError,
    PayloadTooLargeError,
    RequestTimeoutError,
    ShuttingDownError,
)
from service.http.lifecycle import Lifecycle
from service.settings import Settings


@dataclass(frozen=True)
class RequestBounds:
    """Bytes per body, the longest pause inside a body, the longest body, the longest request."""

    max_body_bytes: int
    body_idle_seconds: float
    body_seconds: float
    request_seconds: float

    @classmethod
    def of(cls, settings: Settings) -> RequestBounds:
        return cls(
            max_body_bytes=settings.max_upload_bytes,
            body_idle_seconds=settings.body_idle_seconds,
            body_seconds=settings.body_timeout_seconds,
            request_seconds=settings.request_timeout_seconds,
        )

    def too_large(self, size: int) -> PayloadTooLargeError:
        return PayloadTooLargeError(
            f"request body of {size} bytes is over the limit of {self.max_body_bytes} bytes",
            detail={"limit": self.max_body_bytes},
        )


class Body:
    """The app's `receive`: counts bytes against the limit and the shared budget, and moves the request's
    one timer to the body's limits while it waits for bytes."""

    def __init__(
        self, receive: Receive, scope: Scope, bounds: RequestBounds, bodies: Budget, lifecycle: Lifecycle
    ) -> None:
        self._receive = receive
        self._bounds = bounds
        self._bodies = bodies
        self._lifecycle = lifecycle
        self._declared = content_length(scope)
        self._timer: asyncio.Timeout | None = None
        self._deadline = 0.0
        self._body_deadline: float | None = None
        # While the app waits for body bytes: when that wait ends, by the idle or the total body limit.
        self._waiting_until: float | None = None
        self.complete = not _has_body(scope, self._declared)
        self.failed = False
        self.received = 0
        self.held = 0

    def bound_by(self, timer: asyncio.Timeout) -> None:
        """Use `timer`, set to the request's deadline, as the one timer of this request."""
        self._timer = timer
        self._deadline = timer.when() or 0.0

    def declared_too_large(self) -> PayloadTooLargeError | None:
        """The refusal of a body whose Content-Length is over the limit, before a byte of it is read."""
        if self._declared is None or self._declared <= self._bounds.max_body_bytes:
            return None
        return self._bounds.too_large(self._declared)

    @property
    def abandoned(self) -> bool:
        """Whether the body is left unread because it failed, or may go on for ever (chunked): then the
        connection must close rather than read and discard what the client still sends."""
        return not self.complete and (self.failed or self._declared is None)

    def expired(self) -> HttpError:
        """Why the timer ran out: the body stalled or took too long, the server stopped, or the deadline."""
        waiting = self._waiting_until is not None
        if waiting and self._lifecycle.stopping:
            self.failed = True
            return ShuttingDownError(
                "the server is shutting down and this request's body was still arriving; send it again",
                headers={"Retry-After": "1"},
            )
        if self._waiting_until is None or self._waiting_until > self._deadline:
            return DeadlineExceededError(
                f"the request took longer than its deadline of {self._bounds.request_seconds:g} s",
                detail={"deadline_seconds": self._bounds.request_seconds},
            )
        self.failed = True
        stalled = self._body_deadline is not None and self._waiting_until < self._body_deadline
        reason = (
            f"no body bytes arrived for {self._bounds.body_idle_seconds:g} s"
            if stalled
            else f"the body took longer than {self._bounds.body_seconds:g} s"
        )
        return RequestTimeoutError(f"{reason}; {self.received} bytes were received")

    def release(self) -> None:
        self._bodies.release(self.held)
        self.held = 0

    async def receive(self) -> Message:
        if self.complete:
            return await self._receive()
        try:
            return await self._receive_body()
        except (HttpError, OverloadedError):
            self.failed = True
            raise

    async def _receive_body(self) -> Message:
        message = await self._receive_in_time()
        if message["type"] == "http.disconnect":
            self.complete = True
            return message
        chunk = len(message.get("body", b""))
        self.received += chunk
        if self.received > self._bounds.max_body_bytes:
            raise self._bounds.too_large(self.received)
        # Charged as the bytes arrive, not as declared: connections that declare the limit and then trickle
        # must not hold the budget that honest uploads need.
        await self._bodies.acquire(chunk)
        self.held += chunk
        if not message.get("more_body", False):
            self.complete = True
        return message

    async def _receive_in_time(self) -> Message:
        timer = self._timer
        if timer is None:
            return await self._receive()
        now = asyncio.get_running_loop().time()
        if self._body_deadline is None:
            # The body's time starts when the app first asks for it: after the key check, not before.
            self._body_deadline = now + self._bounds.body_seconds
        self._waiting_until = min(now + self._bounds.body_idle_seconds, self._body_deadline)
        timer.reschedule(min(self._waiting_until, self._deadline))
        self._lifecycle.watch(timer)
        try:
            message = await self._receive()
        finally:
            self._lifecycle.unwatch(timer)
        self._waiting_until = None
        timer.reschedule(self._deadline)
        return message


def content_length(scope: Scope) -> int | None:
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
