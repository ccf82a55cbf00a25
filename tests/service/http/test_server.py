"""The uvicorn layer for real: SIGTERM drains before it stops, SIGHUP and the poll reload the repository,
a stalled upload never holds the shutdown, and each answer leaves in one write."""

from __future__ import annotations

import json
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import onnx_models
import pytest
from conftest import LiveServer, ServerFactory, encode, solid
from polling import wait_for
from spec_examples import assert_like, error_example

RED_PNG = encode(solid((255, 0, 0)), "PNG")


def classify(client: httpx.Client, **params: object) -> httpx.Response:
    return client.post("/classify", files={"image": ("red.png", RED_PNG, "image/png")}, params=params)


def test_sigterm_turns_readiness_503_while_still_answering_then_exits(
    start_server: ServerFactory, test_models_dir: Path
) -> None:
    server = start_server(test_models_dir, drain_seconds=1.5)
    server.process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    ready = server.client.get("/healthz/ready")
    assert ready.status_code == 503
    assert ready.json()["status"] == "draining"
    assert server.client.get("/v2/health/ready").json() == {"ready": False}
    answer = classify(server.client)
    assert answer.status_code == 200
    assert answer.headers["connection"] == "close"  # keep-alive clients move to another replica
    server.process.wait(timeout=15)
    assert time.monotonic() - signalled >= 1.5
    assert "draining: readiness answers 503" in server.logs()
    assert "Traceback" not in server.logs()


def test_sighup_and_the_poll_reload_the_repository(start_server: ServerFactory, tmp_path: Path) -> None:
    hup_root, poll_root = tmp_path / "hup", tmp_path / "poll"
    for root in (hup_root, poll_root):
        onnx_models.colour_classifier(root, name="m", version=1)
    defaults = '{"classify": "m"}'
    by_signal = start_server(hup_root, default_models=defaults)
    by_poll = start_server(poll_root, default_models=defaults, model_poll_seconds=0.2)
    for root in (hup_root, poll_root):
        onnx_models.brightness_classifier(root, name="m", version=2)
    by_signal.process.send_signal(signal.SIGHUP)
    for server in (by_signal, by_poll):
        wait_for(lambda server=server: classify(server.client).json()["model"]["version"] == 2)
        assert classify(server.client).json()["results"][0]["predictions"][0]["label"] == "dark"
        assert server.alive()
    assert "SIGHUP: reloading the model repository" in by_signal.logs()


def test_stalled_uploads_do_not_hold_the_shutdown_nor_become_500s(
    start_server: ServerFactory, test_models_dir: Path
) -> None:
    server = start_server(test_models_dir, body_idle_seconds=60, drain_seconds=0.5, shutdown_seconds=30)
    stalled = []
    for _ in range(20):
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=15)
        sock.sendall(
            b"POST /classify HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\nContent-Length: 9999\r\n\r\nab"
        )
        stalled.append(sock)
    time.sleep(0.3)
    server.process.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    answers = []
    for sock in stalled:
        with sock:
            answer = b""
            while received := sock.recv(65536):
                answer += received
            answers.append(answer)
    server.process.wait(timeout=15)
    assert [answer.split(b"\r\n", 1)[0] for answer in answers] == [b"HTTP/1.1 503 Service Unavailable"] * 20
    for answer in answers:
        assert_like(
            error_example("shutting_down", "/classify", 503), json.loads(answer.partition(b"\r\n\r\n")[2])
        )
    # Cut off when the drain ends, not after the 30 s shutdown period nor the 60 s body pause.
    assert time.monotonic() - signalled < 10
    assert "stopping: 20 request bodies still arriving get 0.5 s" in server.logs()
    assert "Traceback" not in server.logs()


def test_a_request_still_running_when_the_grace_period_ends_gets_503_not_500(
    start_server: ServerFactory, tmp_path: Path
) -> None:
    # A run of 7 s on a 2-core AMD EPYC (60 µs a round), which must outlast the 1 s before SIGTERM and the
    # 0.5 s grace on a machine twice as fast; the test waits for it to end before reading the log.
    onnx_models.slow_classifier(tmp_path, iterations=120_000)
    server = start_server(
        tmp_path, default_models='{"classify": "slow"}', warmup="false", drain_seconds=0, shutdown_seconds=0.5
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
        sock.sendall(
            b"POST /classify HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(RED_PNG), RED_PNG)
        )
        time.sleep(1)  # the body is in, the run under way
        server.process.send_signal(signal.SIGTERM)
        answer = b""
        while received := sock.recv(65536):
            answer += received
    server.process.wait(timeout=60)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split(b"\r\n", 1)[0] == b"HTTP/1.1 503 Service Unavailable"
    assert b"retry-after: 1" in head.lower()
    assert json.loads(body)["error"] == {
        "code": "shutting_down",
        "message": "the server shut down before this request was answered; send it again",
        "detail": None,
    }
    assert "Traceback" not in server.logs()


def written_responses(trace: str) -> list[bytes]:
    """Every write of an HTTP response head in an `strace -xx` log, as the bytes of that one call."""
    writes = re.findall(r'(?:write|sendto|sendmsg|writev)\(\d+, "((?:\\x[0-9a-f]{2})+)"', trace)
    data = [bytes.fromhex(escaped.replace("\\x", "")) for escaped in writes]
    return [chunk for chunk in data if chunk.startswith(b"HTTP/1.1 ")]


def test_each_answer_leaves_in_one_write(server: LiveServer, tmp_path: Path) -> None:
    if shutil.which("strace") is None:
        pytest.skip("needs strace to watch the server's writes")
    trace = tmp_path / "writes.trace"
    watched = ["-e", "trace=write,sendto,sendmsg,writev", "-p", str(server.process.pid), "-o", str(trace)]
    tracer = subprocess.Popen(["strace", "-f", "-qq", "-xx", "-s", "65536", *watched], stderr=subprocess.PIPE)
    try:
        wait_for(lambda: trace.exists(), timeout=10)
        time.sleep(0.5)
        if tracer.poll() is not None:
            pytest.skip(f"strace cannot attach here: {tracer.stderr.read().decode()[:200]}")  # type: ignore[union-attr]
        with httpx.Client(base_url=server.url, timeout=30) as client:
            answers = [
                classify(client),
                client.post("/segment", files={"image": ("red.png", RED_PNG, "image/png")}),
                classify(client, top_k=0),
                client.get("/models"),
                client.get("/nowhere"),
                client.head("/healthz/live"),
            ]
    finally:
        tracer.terminate()
        tracer.wait(timeout=10)
    responses = written_responses(trace.read_text())
    assert len(responses) == len(answers)
    for written, answer in zip(responses, answers, strict=True):
        head, _, body = written.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 %d" % answer.status_code)
        expected = b"" if answer.request.method == "HEAD" else answer.content
        assert body == expected
