"""A cheap closed-loop HTTP/1.1 load generator on asyncio streams (keep-alive, pre-encoded requests).

It shares the 2 cores with the server under test, so it does as little per request as HTTP allows:
requests are encoded once, responses are read by Content-Length or chunks and thrown away. Its own
CPU time is measured and reported next to every result.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from benchmarks.stats import LevelResult

BOUNDARY = "vision-bench-boundary-7f3a"
REQUEST_TIMEOUT_S = 30.0
# A shed client waits this long before its next try, as a client honouring Retry-After would (capped so
# that 64 clients still press the server).
SHED_BACKOFF_S = 0.1


@dataclass(frozen=True)
class Target:
    """Where the load goes: loopback host and port, the path with its query, and the multipart field name."""

    host: str
    port: int
    path: str
    field: str = "image"


def multipart_body(field: str, filename: str, data: bytes, content_type: str = "image/jpeg") -> bytes:
    """One file part in multipart/form-data, as a browser or `curl -F` sends it."""
    head = (
        f"--{BOUNDARY}\r\n"
        f'Content-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()
    return head + data + f"\r\n--{BOUNDARY}--\r\n".encode()


def encode_request(target: Target, image: bytes, index: int) -> bytes:
    """A complete keep-alive POST of one JPEG as multipart/form-data."""
    body = multipart_body(target.field, f"image{index}.jpg", image)
    head = (
        f"POST {target.path} HTTP/1.1\r\n"
        f"Host: {target.host}:{target.port}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: keep-alive\r\n\r\n"
    ).encode()
    return head + body


def parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    """Status code and lower-cased headers of a response head (status line to blank line)."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise ValueError(f"not an HTTP/1.x status line: {lines[0]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    return int(parts[1]), headers


async def read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> int:
    """Read (and drop) the body; returns its length. Handles Content-Length and chunked encoding."""
    if "content-length" in headers:
        length = int(headers["content-length"])
        await reader.readexactly(length)
        return length
    if "chunked" in headers.get("transfer-encoding", "").lower():
        total = 0
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            total += size
            if size == 0:
                return total
    return len(await reader.read())


class _Connection:
    """One keep-alive connection that reopens itself after the server closed it or an error."""

    def __init__(self, target: Target) -> None:
        self._target = target
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def send(self, request: bytes) -> str:
        if self._streams is None:
            self._streams = await asyncio.open_connection(self._target.host, self._target.port)
        reader, writer = self._streams
        writer.write(request)
        await writer.drain()
        status, headers = parse_head(await reader.readuntil(b"\r\n\r\n"))
        await read_body(reader, headers)
        if headers.get("connection", "").lower() == "close":
            self.close()
        return str(status)

    def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None


async def _client(
    target: Target,
    requests: Sequence[bytes],
    order: itertools.count[int],
    deadline: float,
    budget: int,
    result: LevelResult,
) -> None:
    connection = _Connection(target)
    try:
        while time.perf_counter() < deadline and (index := next(order)) < budget:
            started = time.perf_counter()
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT_S):
                    status = await connection.send(requests[index % len(requests)])
            except TimeoutError:
                status = "timeout"
                connection.close()
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
                status = "conn"
                connection.close()
            result.statuses[status] += 1
            if status.startswith("2"):
                result.latencies.append(time.perf_counter() - started)
            elif status == "503":
                await asyncio.sleep(SHED_BACKOFF_S)
    finally:
        connection.close()


async def run_level(
    target: Target,
    images: Sequence[bytes],
    *,
    concurrency: int,
    duration: float,
    max_requests: int,
    server_cpu: Callable[[], float] = lambda: 0.0,
    server_loop_cpu: Callable[[], float] | None = None,
) -> LevelResult:
    """Closed loop: `concurrency` clients send back to back until `duration` seconds or `max_requests`."""
    requests = [encode_request(target, image, index) for index, image in enumerate(images)]
    result = LevelResult(concurrency=concurrency, wall_seconds=0.0)
    order = itertools.count()
    cpu_before, server_before = time.process_time(), server_cpu()
    loop_before = server_loop_cpu() if server_loop_cpu else 0.0
    started = time.perf_counter()
    deadline = started + duration
    await asyncio.gather(
        *(_client(target, requests, order, deadline, max_requests, result) for _ in range(concurrency))
    )
    result.wall_seconds = time.perf_counter() - started
    result.client_cpu_seconds = time.process_time() - cpu_before
    result.server_cpu_seconds = server_cpu() - server_before
    if server_loop_cpu:
        result.server_loop_cpu_seconds = server_loop_cpu() - loop_before
    return result


def measure(
    target: Target,
    images: Sequence[bytes],
    *,
    concurrency: int,
    duration: float,
    max_requests: int,
    warmup: float = 1.0,
    server_cpu: Callable[[], float] = lambda: 0.0,
    server_loop_cpu: Callable[[], float] | None = None,
) -> LevelResult:
    """Warm the level up (results dropped), then measure it."""
    if warmup > 0:
        asyncio.run(
            run_level(target, images, concurrency=concurrency, duration=warmup, max_requests=max_requests)
        )
    return asyncio.run(
        run_level(
            target,
            images,
            concurrency=concurrency,
            duration=duration,
            max_requests=max_requests,
            server_cpu=server_cpu,
            server_loop_cpu=server_loop_cpu,
        )
    )
