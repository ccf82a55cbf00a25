"""Bad input never gets a 500 nor stops the service: each case gets its documented status and error JSON."""

from __future__ import annotations

import socket

import httpx
import pytest
from conftest import LiveServer, encode, solid
from hostile import png_declaring

RED = (255, 0, 0)


def assert_error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    return error


def upload(client: httpx.Client, path: str, data: bytes, **params: object) -> httpx.Response:
    return client.post(path, params=params, files=[("image", ("x", data))])


@pytest.fixture(autouse=True)
def _service_survives(server: LiveServer) -> None:
    yield
    assert server.alive(), server.logs()
    assert server.client.get("/healthz/live").status_code == 200


@pytest.mark.parametrize("path", ["/classify", "/detect", "/segment"])
def test_empty_raw_body(client: httpx.Client, path: str) -> None:
    assert_error(client.post(path, content=b"", headers={"Content-Type": "image/png"}), 400, "empty_image")


def test_empty_file_part(client: httpx.Client) -> None:
    assert_error(upload(client, "/classify", b""), 400, "empty_image")


def test_form_without_image(client: httpx.Client) -> None:
    assert_error(
        client.post("/classify", data={"note": "hello"}, files={"other": ("a", b"x")}), 400, "bad_request"
    )


def test_no_body_at_all(client: httpx.Client) -> None:
    assert_error(client.post("/classify"), 415, "unsupported_media_type")


def test_json_body_is_not_an_image(client: httpx.Client) -> None:
    assert_error(client.post("/classify", json={"image": "..."}), 415, "unsupported_media_type")


@pytest.mark.parametrize("path", ["/classify", "/detect", "/segment"])
def test_non_image_bytes(client: httpx.Client, path: str) -> None:
    assert_error(upload(client, path, b"%PDF-1.7 definitely not an image" * 10), 415, "unsupported_image")


def test_truncated_jpeg(client: httpx.Client) -> None:
    data = encode(solid(RED, (256, 256)), "JPEG")
    assert_error(upload(client, "/classify", data[: len(data) // 2]), 400, "corrupt_image")


def test_truncated_png(client: httpx.Client) -> None:
    data = encode(solid(RED, (256, 256)), "PNG")
    assert_error(upload(client, "/segment", data[:60]), 400, "corrupt_image")


@pytest.mark.parametrize("path", ["/classify", "/detect", "/segment"])
def test_decompression_bomb_png_refused_from_header(client: httpx.Client, path: str) -> None:
    error = assert_error(upload(client, path, png_declaring(30000, 30000)), 413, "image_too_large")
    assert "5000000" in error["message"]


def test_body_over_byte_limit(client: httpx.Client) -> None:
    # The shared server allows 2 MB per request.
    assert_error(upload(client, "/classify", b"\xff\xd8" + b"\0" * 2_100_000), 413, "payload_too_large")


def test_streamed_body_over_byte_limit_without_length(client: httpx.Client) -> None:
    def chunks():
        for _ in range(30):
            yield b"\0" * 100_000

    response = client.post("/classify", content=chunks(), headers={"Content-Type": "image/jpeg"})
    assert_error(response, 413, "payload_too_large")


def test_too_many_images(client: httpx.Client) -> None:
    files = [("image", (f"{i}.png", encode(solid(RED, (4, 4)), "PNG"))) for i in range(5)]
    assert_error(client.post("/classify", files=files), 413, "too_many_images")


def test_unknown_model(client: httpx.Client) -> None:
    error = assert_error(
        upload(client, "/classify", encode(solid(RED), "PNG"), model="nope"), 404, "model_not_found"
    )
    assert "colours" in error["detail"]["available"]


def test_unknown_version(client: httpx.Client) -> None:
    response = upload(client, "/classify", encode(solid(RED), "PNG"), model="colours", version=7)
    assert assert_error(response, 404, "model_not_found")["detail"]["versions"] == [1, 2]


def test_refused_model_is_not_served(client: httpx.Client) -> None:
    assert_error(
        upload(client, "/classify", encode(solid(RED), "PNG"), model="misshapen"), 404, "model_not_found"
    )


@pytest.mark.parametrize(
    ("path", "model"), [("/classify", "boxes"), ("/detect", "threshold"), ("/segment", "colours")]
)
def test_model_of_the_wrong_task(client: httpx.Client, path: str, model: str) -> None:
    assert_error(upload(client, path, encode(solid(RED), "PNG"), model=model), 422, "wrong_task")


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/classify", {"top_k": 0}),
        ("/classify", {"top_k": "three"}),
        ("/classify", {"version": 0}),
        ("/classify", {"model": "../../etc/passwd"}),
        ("/detect", {"score_threshold": 1.5}),
        ("/detect", {"score_threshold": -0.1}),
        ("/detect", {"iou_threshold": "nan"}),
        ("/detect", {"max_detections": 0}),
        ("/segment", {"style": "sepia"}),
        ("/segment", {"format": "xml"}),
    ],
)
def test_invalid_parameters(client: httpx.Client, path: str, params: dict) -> None:
    error = assert_error(upload(client, path, encode(solid(RED), "PNG"), **params), 422, "invalid_parameter")
    assert next(iter(params)) in error["message"]


def test_png_answer_refuses_a_batch(client: httpx.Client) -> None:
    files = [("image", (f"{i}.png", encode(solid(RED), "PNG"))) for i in range(2)]
    error = assert_error(client.post("/segment", files=files), 400, "bad_request")
    assert "/segment/json" in error["message"]


def test_segment_json_through_the_old_parameter_says_where_it_moved(client: httpx.Client) -> None:
    error = assert_error(
        upload(client, "/segment", encode(solid(RED), "PNG"), format="json"), 422, "invalid_parameter"
    )
    assert (
        error["message"] == "format: /segment answers a PNG; for JSON, POST the same request to /segment/json"
    )


def test_unknown_route_and_method(client: httpx.Client) -> None:
    assert_error(client.get("/nowhere"), 404, "not_found")
    assert_error(client.get("/classify"), 405, "method_not_allowed")


def test_service_still_answers_after_bad_input(client: httpx.Client) -> None:
    upload(client, "/classify", b"garbage")
    response = upload(client, "/classify", encode(solid(RED), "PNG"))
    assert response.status_code == 200


def test_an_oversized_chunked_upload_is_cut_off(server: LiveServer) -> None:
    # The shared server allows 2 MB. Streaming 20 MB must end in a 413 and a closed connection; the server
    # half-closes and discards what still arrives for a moment, so the client reads the 413, not a reset. A
    # server that reads on and keeps the connection lets it all through, then idles.
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            b"POST /classify HTTP/1.1\r\nHost: test\r\nContent-Type: image/jpeg\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"%x\r\n%s\r\n" % (100_000, b"\0" * 100_000)
        answer = b""
        try:
            for _ in range(200):
                sock.sendall(chunk)
            while received := sock.recv(65536):
                answer += received
        except (BrokenPipeError, ConnectionResetError):
            pass
    assert answer.startswith(b"HTTP/1.1 413")
    assert b"payload_too_large" in answer
    assert b"connection: close" in answer.lower()
