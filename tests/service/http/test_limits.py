"""Time and memory limits of one request, through a live server and raw sockets: a stalled head or body is
cut off with 408, a request past its deadline gets 504, and bodies share a bounded budget of bytes."""

from __future__ import annotations

import contextlib
import json
import resource
import socket
import time
from pathlib import Path

import pytest
from conftest import LiveServer, ServerFactory, encode, solid
from polling import wait_for
from spec_examples import assert_like, error_example

from service.http.server import RESERVED_FILES, connection_limit

POST_HEAD = b"POST /classify HTTP/1.1\r\nHost: test\r\nContent-Type: image/png\r\nContent-Length: %d\r\n\r\n"


@pytest.fixture(scope="module")
def stalls(start_server: ServerFactory, test_models_dir: Path) -> LiveServer:
    return start_server(
        test_models_dir, header_timeout_seconds=1, body_idle_seconds=1, body_timeout_seconds=2
    )


@pytest.fixture(scope="module")
def deadline(start_server: ServerFactory, test_models_dir: Path) -> LiveServer:
    return start_server(test_models_dir, request_timeout_seconds=1.5, body_idle_seconds=5)


@pytest.fixture(scope="module")
def small_budget(start_server: ServerFactory, test_models_dir: Path) -> LiveServer:
    return start_server(
        test_models_dir, max_upload_bytes=1_000_000, body_budget_bytes=1_500_000, body_idle_seconds=5
    )


def connect(server: LiveServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=15)


def read_until_closed(sock: socket.socket) -> bytes:
    answer = b""
    while received := sock.recv(65536):
        answer += received
    return answer


def trickle(server: LiveServer, every: float) -> bytes:
    """Send a head for 1000 body bytes, then one byte every `every` seconds until the server answers."""
    with connect(server) as sock:
        sock.sendall(POST_HEAD % 1000)
        answer = b""
        started = time.monotonic()
        while not answer and time.monotonic() - started < 10:
            sock.sendall(b"x")
            sock.settimeout(every)
            try:
                answer = sock.recv(65536)
            except TimeoutError:
                continue
        sock.settimeout(15)
        return answer + read_until_closed(sock)


def status_and_error(answer: bytes) -> tuple[int, dict[str, object], bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body)["error"], head.lower()


def test_a_connection_that_sends_nothing_gets_408_and_is_closed(stalls: LiveServer) -> None:
    with connect(stalls) as sock:
        status, error, head = status_and_error(read_until_closed(sock))
    assert status == 408
    assert error["code"] == "request_timeout"
    assert "head did not arrive within 1 s" in str(error["message"])
    assert b"connection: close" in head


def test_a_head_that_never_ends_is_cut_off(stalls: LiveServer) -> None:
    with connect(stalls) as sock:
        sock.sendall(b"POST /classify HTTP/1.1\r\nHost: test\r\n")
        status, error, _ = status_and_error(read_until_closed(sock))
    assert (status, error["code"]) == (408, "request_timeout")


def send_head_until_answered(server: LiveServer, head: bytes, chunk: int = 4096) -> bytes:
    """Send `head` in chunks, as fast as the server reads, until it answers or closes; then the answer."""
    with connect(server) as sock:
        for start in range(0, len(head), chunk):
            try:
                sock.sendall(head[start : start + chunk])
            except (BrokenPipeError, ConnectionResetError):
                break
        return read_until_closed(sock)


def test_a_head_of_50_mib_is_refused_with_431_after_its_first_kilobytes(server: LiveServer) -> None:
    head = b"GET /healthz/live HTTP/1.1\r\nHost: test\r\nX-Padding: " + b"a" * (50 * 1024 * 1024)
    status, error, head_lines = status_and_error(send_head_until_answered(server, head))
    assert (status, error["code"]) == (431, "headers_too_large")
    assert error["message"] == "the request head is over 32768 bytes"
    assert b"connection: close" in head_lines


def test_a_head_of_too_many_lines_is_refused_with_431(server: LiveServer) -> None:
    lines = b"".join(b"X-Line-%d: x\r\n" % index for index in range(101))
    head = b"GET /healthz/live HTTP/1.1\r\nHost: test\r\n" + lines + b"\r\n"
    status, error, _ = status_and_error(send_head_until_answered(server, head))
    assert (status, error["code"]) == (431, "headers_too_large")
    assert error["message"] == "the request has more than 100 header lines"


def test_a_head_within_the_limits_is_answered(server: LiveServer) -> None:
    lines = b"".join(b"X-Line-%d: %s\r\n" % (index, b"x" * 200) for index in range(90))
    head = b"GET /healthz/live HTTP/1.1\r\nHost: test\r\nConnection: close\r\n" + lines + b"\r\n"
    assert send_head_until_answered(server, head).startswith(b"HTTP/1.1 200 OK")


def test_a_body_that_stalls_gets_408_and_the_connection_closes(stalls: LiveServer) -> None:
    with connect(stalls) as sock:
        sock.sendall(POST_HEAD % 1000 + b"\x89PNG")
        status, error, head = status_and_error(read_until_closed(sock))
    assert (status, error["code"]) == (408, "request_timeout")
    assert error["message"] == "no body bytes arrived for 1 s; 4 bytes were received"
    assert_like(error_example("request_timeout", "/classify", 408), {"error": error})
    assert b"connection: close" in head


def test_a_body_that_trickles_past_its_time_gets_408(stalls: LiveServer) -> None:
    # One byte every 0.4 s never trips the 1 s pause, but the whole body may take 2 s.
    status, error, _ = status_and_error(trickle(stalls, every=0.4))
    assert (status, error["code"]) == (408, "request_timeout")
    assert str(error["message"]).startswith("the body took longer than 2 s")


def test_the_server_answers_normally_between_stalled_connections(stalls: LiveServer) -> None:
    stalled = [connect(stalls) for _ in range(20)]
    try:
        response = stalls.client.post(
            "/classify", files={"image": ("red.png", encode(solid((255, 0, 0)), "PNG"), "image/png")}
        )
        assert response.status_code == 200
    finally:
        for sock in stalled:
            sock.close()


def test_a_request_past_its_deadline_gets_504(deadline: LiveServer) -> None:
    status, error, head = status_and_error(trickle(deadline, every=0.3))
    assert (status, error["code"]) == (504, "deadline_exceeded")
    assert error["detail"] == {"deadline_seconds": 1.5}
    assert_like(error_example("deadline_exceeded", "/classify", 504), {"error": error})
    assert b"connection: close" in head


def test_bodies_share_a_bounded_budget_of_the_bytes_received(small_budget: LiveServer) -> None:
    with connect(small_budget) as holder, connect(small_budget) as refused:
        holder.sendall(POST_HEAD % 1_000_000 + b"\0" * 990_000)  # holds what it sent, then stalls
        time.sleep(0.5)
        refused.sendall(POST_HEAD % 1_000_000)
        with contextlib.suppress(ConnectionError):
            refused.sendall(b"\0" * 990_000)  # more than the 510,000 bytes left
        status, error, head = status_and_error(read_until_closed(refused))
        assert (status, error["code"]) == (503, "overloaded")
        assert error["detail"]["budget"] == "request-body byte"
        assert error["detail"]["capacity"] == 1_500_000
        assert_like(error_example("overloaded", "/classify", 503), {"error": error})
        assert b"retry-after: 1" in head
        assert b"connection: close" in head
    # The holder is gone: its bytes are back in the budget.
    response = small_budget.client.post(
        "/classify", files={"image": ("red.png", encode(solid((255, 0, 0)), "PNG"), "image/png")}
    )
    assert response.status_code == 200


def test_connections_that_declare_the_limit_and_trickle_starve_no_upload(small_budget: LiveServer) -> None:
    # Charged as declared, heads of 1 MB and 0.5 MB held the whole 1.5 MB budget and refused every upload.
    tricklers = [connect(small_budget) for _ in range(2)]
    try:
        for sock, declared in zip(tricklers, (1_000_000, 500_000), strict=True):
            sock.sendall(POST_HEAD % declared + b"\0")
        time.sleep(0.3)
        photo = encode(solid((255, 0, 0)), "PNG")
        statuses = [
            small_budget.client.post(
                "/classify", files={"image": ("red.png", photo, "image/png")}
            ).status_code
            for _ in range(20)
        ]
        assert statuses == [200] * 20
    finally:
        for sock in tricklers:
            sock.close()


def test_past_its_connection_limit_a_request_gets_503_and_its_turn_later(
    start_server: ServerFactory, test_models_dir: Path
) -> None:
    server = start_server(test_models_dir, max_connections=20)
    idle = [connect(server) for _ in range(20)]
    try:
        time.sleep(0.3)
        with connect(server) as sock:
            sock.sendall(b"GET /healthz/live HTTP/1.1\r\nHost: test\r\n\r\n")
            status, error, head = status_and_error(read_until_closed(sock))
        assert (status, error["code"]) == (503, "overloaded")
        assert error["message"] == "the server holds its limit of 20 connections; retry soon"
        assert b"retry-after: 1" in head
    finally:
        for sock in idle:
            sock.close()
    wait_for(lambda: server.client.get("/healthz/live").status_code == 200)


def test_the_connection_limit_stays_under_the_open_files_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        assert connection_limit(50) == 50
        assert connection_limit(0) == max(16, resource.getrlimit(resource.RLIMIT_NOFILE)[0] - RESERVED_FILES)
        assert connection_limit(10**9) < resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
