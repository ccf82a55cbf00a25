"""Slow clients: 200 uploads that stall are cut off in time while other clients are served, and a shutdown
with 200 of them attached neither waits for them nor answers them with a 500."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import socket
import statistics
import time
from pathlib import Path

import httpx
import numpy as np
from conftest import LiveServer, ServerFactory, encode, solid
from hostile import BOUNDARY, file_part, multipart
from PIL import Image
from polling import wait_for

STALLED = 200
STALLED_HEAD = (
    b"POST /classify HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\n\x89PNG"
)


def stall(server: LiveServer) -> list[socket.socket]:
    sockets = []
    for _ in range(STALLED):
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        sock.sendall(STALLED_HEAD)
        sockets.append(sock)
    return sockets


def answer_of(sock: socket.socket) -> tuple[bytes, float]:
    """The status line the server sent on `sock`, and when the connection ended."""
    answer = b""
    with sock:
        while received := sock.recv(65536):
            answer += received
    return answer.split(b"\r\n", 1)[0], time.monotonic()


async def latencies(server: LiveServer, count: int) -> list[float]:
    image = encode(solid((255, 0, 0)), "PNG")
    seconds = []
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
        for _ in range(count):
            started = time.monotonic()
            response = await client.post("/classify", files={"image": ("red.png", image, "image/png")})
            assert response.status_code == 200
            seconds.append(time.monotonic() - started)
    return seconds


async def answers_of(sockets: list[socket.socket]) -> list[tuple[bytes, float]]:
    return list(await asyncio.gather(*(asyncio.to_thread(answer_of, sock) for sock in sockets)))


def test_stalled_uploads_are_cut_off_while_others_are_served(
    start_server: ServerFactory, test_models_dir: Path
) -> None:
    server = start_server(test_models_dir, body_idle_seconds=3)
    quiet = statistics.median(asyncio.run(latencies(server, 50)))
    stalled_at = time.monotonic()
    sockets = stall(server)

    async def serve_while_stalled() -> tuple[list[float], list[tuple[bytes, float]]]:
        cut = asyncio.create_task(answers_of(sockets))
        served = await latencies(server, 50)
        return served, await cut

    served, answers = asyncio.run(serve_while_stalled())
    cut_after = [ended - stalled_at for _, ended in answers]
    beside = statistics.median(served)
    print(
        f"{STALLED} stalled uploads: cut off {min(cut_after):.1f}-{max(cut_after):.1f} s after they stalled "
        f"(limit 3 s); /classify median {quiet * 1000:.1f} ms alone, {beside * 1000:.1f} ms beside them"
    )
    assert {status for status, _ in answers} == {b"HTTP/1.1 408 Request Timeout"}
    assert max(cut_after) < 3 + 5
    assert "Traceback" not in server.logs()


def test_a_shutdown_with_stalled_uploads_attached_is_clean_and_prompt(
    start_server: ServerFactory, test_models_dir: Path
) -> None:
    server = start_server(test_models_dir, drain_seconds=1, shutdown_seconds=20)
    sockets = stall(server)
    time.sleep(0.5)
    server.process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    answers = asyncio.run(answers_of(sockets))
    server.process.wait(timeout=30)
    exited = time.monotonic() - signalled
    print(f"SIGTERM with {STALLED} stalled uploads: exit after {exited:.1f} s")
    assert {status for status, _ in answers} == {b"HTTP/1.1 503 Service Unavailable"}
    # The drain (1 s), then half a second for bodies to move: not the 20 s shutdown period.
    assert exited < 1 + 5
    assert "Traceback" not in server.logs()
    assert "Internal Server Error" not in server.logs()


def noise_jpegs(count: int, size: tuple[int, int] = (1600, 1000)) -> list[bytes]:
    """Photos whose overlays compress badly: an answer of megabytes from a body of a few."""
    generator = np.random.default_rng(7)
    return [
        encode(Image.fromarray(generator.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)), "JPEG")
        for _ in range(count)
    ]


def ask_and_never_read(server: LiveServer, images: list[bytes]) -> socket.socket:
    """A /segment/json overlay request for `images` whose answer is never read (a small receive window)."""
    body = multipart(*(file_part(data, filename=f"{index}.jpg") for index, data in enumerate(images)))
    content_type = f"multipart/form-data; boundary={BOUNDARY}"
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(30)
    sock.connect(("127.0.0.1", server.port))
    sock.sendall(
        b"POST /segment/json?style=overlay HTTP/1.1\r\nHost: t\r\n"
        b"Content-Type: %s\r\nContent-Length: %d\r\n\r\n" % (content_type.encode(), len(body)) + body
    )
    return sock


def test_an_answer_nobody_reads_is_cut_off_and_its_memory_freed(
    start_server: ServerFactory, test_models_dir: Path
) -> None:
    server = start_server(test_models_dir, send_timeout_seconds=1)
    sock = ask_and_never_read(server, noise_jpegs(8))
    wait_for(lambda: "cut off an answer" in server.logs(), timeout=60)
    received = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            received += chunk
    sock.close()
    head, _, body = received.partition(b"\r\n\r\n")
    declared = int(re.search(rb"content-length: (\d+)", head.lower()).group(1))
    assert len(body) < declared  # cut off, not delivered late
    assert declared > 8_000_000
    assert server.alive()


def test_unread_answers_count_in_the_body_budget_until_they_leave(
    start_server: ServerFactory, test_models_dir: Path
) -> None:
    server = start_server(
        test_models_dir, body_budget_bytes=4_000_000, max_upload_bytes=4_000_000, send_timeout_seconds=60
    )
    unread = ask_and_never_read(server, noise_jpegs(4, (1200, 800)))
    photo = encode(solid((255, 0, 0)), "PNG")

    def upload() -> int:
        return server.client.post("/classify", files={"image": ("red.png", photo, "image/png")}).status_code

    with unread:
        wait_for(lambda: upload() == 503, timeout=60)  # the unread megabytes fill the budget
    wait_for(lambda: upload() == 200, timeout=30)  # and leave it with their connection
