"""The load generator: real wrk sends the prepared requests whole and in turn, and its answers are counted by
status, with 503s lacking Retry-After counted apart; against a small threaded HTTP server on loopback."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from benchmarks import wrk

UPLOADS = [b"\xff\xd8first", b"\xff\xd8second, longer"]


class Recorder(BaseHTTPRequestHandler):
    """Keeps every body by path; /shed answers 503 with Retry-After, /bare without, others 200."""

    protocol_version = "HTTP/1.1"
    seen: ClassVar[dict[str, list[tuple[dict[str, str], bytes]]]] = {}

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.setdefault(self.path, []).append((dict(self.headers), body))
        status = {"/shed": 503, "/bare": 503}.get(self.path, 200)
        self.send_response(status)
        if self.path == "/shed":
            self.send_header("Retry-After", "1")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()


def test_every_upload_arrives_whole_as_multipart_and_200s_are_counted(port: int) -> None:
    result = wrk.measure(wrk.Target("127.0.0.1", port, "/ok"), UPLOADS, concurrency=2, duration=1, warmup=0)
    assert result.ok == sum(result.statuses.values()) > 10
    bodies = {body for _, body in Recorder.seen["/ok"]}
    assert bodies == {wrk.multipart(upload, index)[1] for index, upload in enumerate(UPLOADS)}
    headers = Recorder.seen["/ok"][0][0]
    assert headers["Content-Type"] == f"multipart/form-data; boundary={wrk.BOUNDARY}"
    assert 0 < result.latency_ms[50] <= result.latency_ms[99]
    assert result.client_cpu_seconds > 0


def test_503s_are_counted_and_those_without_retry_after_apart(port: int) -> None:
    shed = wrk.run(wrk.Target("127.0.0.1", port, "/shed"), UPLOADS, concurrency=1, duration=1)
    assert shed.errors()["503"] > 0
    assert shed.shed_without_retry_after == 0
    # A shed connection waits 100 ms before its next request, as a client honouring Retry-After would.
    assert shed.errors()["503"] <= 15
    bare = wrk.run(wrk.Target("127.0.0.1", port, "/bare"), UPLOADS, concurrency=1, duration=1)
    assert bare.shed_without_retry_after == bare.errors()["503"] > 0


def test_the_triton_encoding_is_the_binary_data_extension(port: int) -> None:
    target = wrk.Target("127.0.0.1", port, "/triton", wrk.triton_binary)
    wrk.run(target, UPLOADS[:1], concurrency=1, duration=1)
    headers, body = Recorder.seen["/triton"][0]
    split = int(headers["Inference-Header-Content-Length"])
    header = json.loads(body[:split])
    assert header["inputs"][0]["datatype"] == "BYTES"
    assert body[split:] == len(UPLOADS[0]).to_bytes(4, "little") + UPLOADS[0]
    assert header["inputs"][0]["parameters"]["binary_data_size"] == len(body) - split
