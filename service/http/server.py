"""Serving with uvicorn: what its HTTP protocol lacks, and the shutdown sequence.

The protocol adds to uvicorn's:
- a request head must arrive within `header_timeout_seconds` of the connection or of its first byte (uvicorn
  waits for ever): else 408 and the connection closes;
- a head is bounded in bytes and in header lines (uvicorn's httptools parser buffers any amount): else 431
  and the connection closes;
- connections are bounded below the open-files limit (`connection_limit`): a request on one more is answered
  503 with Retry-After, where at the limit accept() would fail and clients see resets;
- an answer the client does not read is cut off: when no byte of it leaves for `send.timeout_seconds`, the
  connection is aborted and its unsent bytes freed; until then they are charged to `send.unsent`, the budget
  that request bodies draw on, so unread answers cannot grow memory without bound;
- a response's head and body leave in one write, so a process killed between the two never leaves a proxy
  holding a head without a body, which it can neither finish nor retry;
- while draining, every answer carries `Connection: close`, so keep-alive clients reconnect elsewhere, and
  at shutdown an idle connection may still deliver a request for `LAST_REQUEST_SECONDS`;
- a connection closed while its client is still sending is half-closed and drained for `LINGER_SECONDS`
  first (nginx's lingering close), so the client reads the answer instead of a reset.

Signals: SIGTERM drains (readiness 503, still serving for `drain_seconds`), then stops accepting, cuts off
stalled bodies and lets requests in flight finish within `shutdown_seconds`. SIGINT skips the drain. SIGHUP
reloads the model repository.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import resource
import signal
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Generator, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from types import FrameType
from typing import Any, Protocol

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.core.budget import Budget
from service.core.errors import OVERLOADED_RETRY_AFTER_SECONDS
from service.http.errors import error_body, status_of
from service.http.lifecycle import Lifecycle

logger = logging.getLogger("vision.server")

LINGER_SECONDS = 2.0
# At shutdown, how long a connection with no request under way may still deliver one: a client that wrote
# it just as the server stopped gets its answer (with Connection: close) instead of a reset.
LAST_REQUEST_SECONDS = 0.5


@dataclass(frozen=True)
class HeadLimits:
    """How long a request head may take to arrive, and how large it may be."""

    timeout_seconds: float
    max_bytes: int
    max_headers: int


@dataclass(frozen=True)
class SendLimits:
    """How long an answer may wait for its client to read a byte, and the budget its unsent bytes count in."""

    timeout_seconds: float
    unsent: Budget


# File descriptors kept free of connections: the listening socket, logs, model files, the decode workers'
# pipes, and the connections being refused.
RESERVED_FILES = 128


def connection_limit(configured: int) -> int:
    """The most connections to serve: `configured`, or with 0 as many as the open-files limit allows once
    raised to its hard ceiling, less what the process needs besides."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    available = max(16, soft - RESERVED_FILES)
    limit = min(configured, available) if configured else available
    logger.info("serving at most %d connections (open files limit %d)", limit, soft)
    return limit


@dataclass(frozen=True)
class _Refusal:
    """An answer the protocol gives itself, before a request reaches the app."""

    code: str
    message: str
    retry_after: int | None = None


class _HeadRefusedError(Exception):
    """Raised from a parser callback to stop parsing a head that is refused."""


def protocol_for(
    lifecycle: Lifecycle, head: HeadLimits, send: SendLimits, max_connections: int
) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with the limits above, for `uvicorn.Config(http=...)`."""

    class GuardedProtocol(HttpToolsProtocol):
        _head_timer: asyncio.TimerHandle | None = None
        _lingering = False
        # Head bytes counted from the first read after the one in which the head began: never more than
        # what arrived, whatever a pipelined request before it left in that read.
        _head_bytes = 0
        _header_count = 0
        _head_began_now = False
        _head_refusal: _Refusal | None = None
        _send_timer: asyncio.TimerHandle | None = None
        _unsent_charged = 0
        _unsent_seen: int | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_head_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_head_timer()
            self._stop_watching_unsent()
            super().connection_lost(exc)

        def pause_writing(self) -> None:
            super().pause_writing()
            self._unsent_seen = None
            self._watch_unsent()

        def resume_writing(self) -> None:
            super().resume_writing()
            self._stop_watching_unsent()

        def data_received(self, data: bytes) -> None:
            if self._lingering:
                return  # read only to be discarded: the answer is sent and the connection is closing
            self._head_began_now = False
            super().data_received(data)
            if self._head_timer is None or self._head_began_now or self.transport.is_closing():
                return
            self._head_bytes += len(data)
            if self._head_bytes > head.max_bytes:
                self._refuse(
                    _Refusal("headers_too_large", f"the request head is over {head.max_bytes} bytes")
                )

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._head_bytes = self._header_count = 0
            self._head_began_now = True
            if self._head_timer is None:
                self._arm_head_timer()

        def on_header(self, name: bytes, value: bytes) -> None:
            self._header_count += 1
            if self._header_count > head.max_headers:
                message = f"the request has more than {head.max_headers} header lines"
                self._head_refusal = _Refusal("headers_too_large", message)
                raise _HeadRefusedError
            super().on_header(name, value)

        def send_400_response(self, msg: str) -> None:
            # uvicorn's answer to a parser error, which is what a refusal raised in a callback becomes.
            if self._head_refusal is None:
                super().send_400_response(msg)
            else:
                self._refuse(self._head_refusal)

        def on_headers_complete(self) -> None:
            self._cancel_head_timer()
            if len(self.connections) > max_connections:
                # Kept below the open-files limit, where accept() would fail and clients get resets.
                message = f"the server holds its limit of {max_connections} connections; retry soon"
                self._head_refusal = _Refusal("overloaded", message, OVERLOADED_RETRY_AFTER_SECONDS)
                raise _HeadRefusedError
            super().on_headers_complete()
            cycle = self.cycle
            if cycle is None or cycle.scope is not self.scope:
                return  # an upgrade: not ours to handle
            cycle.transport = _OneWriteTransport(self, self.transport, cycle)  # type: ignore[assignment]
            if lifecycle.draining:
                cycle.keep_alive = False

        def shutdown(self) -> None:
            if self.cycle is None or self.cycle.response_complete:
                self.loop.call_later(LAST_REQUEST_SECONDS, self._close_if_idle)
            else:
                self.cycle.keep_alive = False

        def _close_if_idle(self) -> None:
            if (self.cycle is None or self.cycle.response_complete) and not self.transport.is_closing():
                self.transport.close()

        def linger(self) -> None:
            """Stop answering, send what is queued and a FIN, discard what still arrives, close soon."""
            if self._lingering or self.transport.is_closing():
                return
            self._lingering = True
            self.flow.resume_reading()
            if self.transport.can_write_eof():
                self.transport.write_eof()
            self.loop.call_later(LINGER_SECONDS, self.transport.close)

        def _watch_unsent(self) -> None:
            """Charge what waits to be sent; abort when none of it left since the last look."""
            self._send_timer = None
            unsent = self.transport.get_write_buffer_size()
            if self._unsent_seen is not None and unsent >= self._unsent_seen:
                logger.warning(
                    "cut off an answer to %s: %d bytes unread for %g s",
                    self.client,
                    unsent,
                    send.timeout_seconds,
                )
                self._stop_watching_unsent()
                self.transport.abort()  # unlike close, drops the unsent bytes
                return
            self._unsent_seen = unsent
            if unsent > self._unsent_charged:
                send.unsent.charge(unsent - self._unsent_charged)
            else:
                send.unsent.release(self._unsent_charged - unsent)
            self._unsent_charged = unsent
            self._send_timer = self.loop.call_later(send.timeout_seconds, self._watch_unsent)

        def _stop_watching_unsent(self) -> None:
            if self._send_timer is not None:
                self._send_timer.cancel()
                self._send_timer = None
            send.unsent.release(self._unsent_charged)
            self._unsent_charged = 0

        def _arm_head_timer(self) -> None:
            self._head_timer = self.loop.call_later(head.timeout_seconds, self._head_timed_out)

        def _cancel_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timed_out(self) -> None:
            self._head_timer = None
            message = f"the request head did not arrive within {head.timeout_seconds:g} s"
            self._answer_and_close(_Refusal("request_timeout", message))

        def _refuse(self, refusal: _Refusal) -> None:
            self._cancel_head_timer()
            logger.warning("refused a request from %s: %s", self.client, refusal.message)
            self._answer_and_close(refusal)

        def _answer_and_close(self, refusal: _Refusal) -> None:
            """An error answered before any request reached the app; the connection then lingers, so what
            the client still sends cannot turn into a reset that destroys the answer."""
            if self.transport.is_closing():
                return
            status = status_of(refusal.code)
            body = json.dumps(error_body(refusal.code, refusal.message)).encode()
            retry = b"" if refusal.retry_after is None else b"retry-after: %d\r\n" % refusal.retry_after
            self.transport.write(
                b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\n%sconnection: close\r\n\r\n%s"
                % (status, HTTPStatus(status).phrase.encode(), len(body), retry, body)
            )
            self.linger()

    return GuardedProtocol


class _OneWriteTransport:
    """One response's view of the connection: its head is held until the body's first bytes, then both are
    written together; closing lingers when the request body is still arriving."""

    def __init__(self, protocol: Any, transport: asyncio.Transport, cycle: Any) -> None:
        self._protocol = protocol
        self._transport = transport
        self._cycle = cycle
        self._head: bytes | None = None
        self._head_sent = False

    def write(self, data: bytes) -> None:
        if self._cycle.response_started and not self._head_sent:
            if self._head is None:
                self._head = data
                # uvicorn writes every body, empty ones too, except a HEAD answer's: that head leaves on the
                # next turn of the loop.
                if self._cycle.scope["method"] == "HEAD":
                    self._protocol.loop.call_soon(self._flush)
                return
            data = self._take_head() + data
        self._transport.write(data)

    def close(self) -> None:
        self._flush()
        if self._cycle.more_body and not self._cycle.disconnected:
            self._protocol.linger()
        else:
            self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def _take_head(self) -> bytes:
        head, self._head = self._head or b"", None
        self._head_sent = True
        return head

    def _flush(self) -> None:
        if self._head is not None and not self._transport.is_closing():
            self._transport.write(self._take_head())


class Companion(Protocol):
    """Another server in this process on the same engine (the gRPC one): it lives and dies with this one."""

    async def start(self) -> None: ...

    def drain(self) -> None: ...

    async def stop(self, grace: float) -> None: ...


class DrainingServer(uvicorn.Server):
    """uvicorn's server with a drain before the shutdown and SIGHUP as a reload; `companions` start once the
    app has, drain with it, and stop (their calls in flight finished) before the engine closes."""

    def __init__(
        self,
        config: uvicorn.Config,
        lifecycle: Lifecycle,
        drain_seconds: float,
        reload: Callable[[], Coroutine[Any, Any, object]],
        companions: Sequence[Companion] = (),
        shutdown_seconds: float = 0,
    ) -> None:
        super().__init__(config)
        self.lifecycle = lifecycle
        self.drain_seconds = drain_seconds
        self.companions = companions
        self.shutdown_seconds = shutdown_seconds
        self._reload = reload
        self._drain_ends: float | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._reloads: set[asyncio.Task[object]] = set()

    async def startup(self, sockets: Any = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().startup(sockets)
        if self.should_exit:
            return
        try:
            for companion in self.companions:
                await companion.start()
        except OSError as exc:
            # As uvicorn ends when it cannot bind its own port: one line, the app shut down, exit status 1.
            logger.error("%s", exc)
            await self.lifespan.shutdown()
            sys.exit(1)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        for companion in self.companions:
            companion.drain()
        if sig == signal.SIGTERM and self.drain_seconds > 0 and not self.lifecycle.draining:
            self.lifecycle.drain(self.drain_seconds)
            self._drain_ends = time.monotonic() + self.drain_seconds
            self._captured_signals.append(sig)
            return
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self._drain_ends is not None and time.monotonic() >= self._drain_ends:
            self.should_exit = True
        return await super().on_tick(counter)

    async def shutdown(self, sockets: Any = None) -> None:
        self.lifecycle.stop()
        await asyncio.gather(*(companion.stop(self.shutdown_seconds) for companion in self.companions))
        await super().shutdown(sockets)

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        with super().capture_signals():
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            previous = signal.signal(signal.SIGHUP, self._handle_hangup)
            try:
                yield
            finally:
                signal.signal(signal.SIGHUP, previous)

    def _handle_hangup(self, sig: int, frame: FrameType | None) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._start_reload)

    def _start_reload(self) -> None:
        logger.info("SIGHUP: reloading the model repository")
        task = asyncio.ensure_future(self._reload())
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)
