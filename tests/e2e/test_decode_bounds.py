"""A decode is bounded whatever the file, through a live server: past its time it is stopped with 413, a
request given up (its deadline, here) stops its decode, and the service goes on answering."""

from __future__ import annotations

from pathlib import Path

from conftest import LiveServer, ServerFactory, encode, solid
from hostile import jpeg_with_repeated_scans
from polling import wait_for

from service.core.inspection import MAX_JPEG_SCANS

# About a second of libjpeg's time on the machine that wrote this, allowed by the inspection.
SLOW = jpeg_with_repeated_scans(MAX_JPEG_SCANS - 10, side=4096)
RED = encode(solid((255, 0, 0)), "PNG")


def classify(server: LiveServer, data: bytes, content_type: str) -> tuple[int, dict]:
    response = server.client.post("/classify", content=data, headers={"Content-Type": content_type})
    return response.status_code, response.json()


def test_a_decode_past_its_time_is_stopped_with_413(
    start_server: ServerFactory, test_models_dir: Path
) -> None:
    # A third of SLOW's second; a replacement worker's first decode of RED took 16 to 22 ms beside three
    # busy loops on 2 cores, and once went over 0.1 s beside the backbone trainings of a `make test`.
    server = start_server(test_models_dir, decode_timeout_seconds=0.3)
    status, body = classify(server, SLOW, "image/jpeg")
    assert (status, body["error"]["code"]) == (413, "image_too_large")
    assert body["error"]["message"] == "decoding the image took longer than 0.3 s"
    assert "killed: a decode ran over 0.3 s" in server.logs()
    assert classify(server, RED, "image/png")[0] == 200


def test_a_request_past_its_deadline_stops_its_decode(
    start_server: ServerFactory, test_models_dir: Path
) -> None:
    server = start_server(test_models_dir, request_timeout_seconds=0.2, decode_timeout_seconds=600)
    status, body = classify(server, SLOW, "image/jpeg")
    assert (status, body["error"]["code"]) == (504, "deadline_exceeded")
    wait_for(lambda: "killed: its request was given up" in server.logs(), timeout=30)
    assert classify(server, RED, "image/png")[0] == 200
