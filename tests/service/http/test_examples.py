"""Every example in the OpenAPI document is a real answer: each request behind one is sent again to a live
server over the bundled models, and the answer must have the example's shape (the task answers: its values).
The time-outs, the overload and the shutdown are provoked where their own tests make them happen
(test_limits, test_server, routes/test_models)."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from conftest import BUNDLED_KEYS, REPO_ROOT, LiveServer, ServerFactory
from hostile import png_declaring
from spec_examples import assert_like, assert_same_answer, body_example, error_example

from service.http.examples import V2_INFER_REQUEST

EXAMPLES = REPO_ROOT / "docs" / "examples"
PNG = {"Content-Type": "image/png"}


def star() -> dict[str, tuple[str, bytes]]:
    return {"image": ("star.jpg", (EXAMPLES / "star.jpg").read_bytes())}


def too_large_body(server: LiveServer) -> httpx.Response:
    """A head declaring one byte over the limit: refused before any body byte is read."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=15) as sock:
        sock.sendall(b"POST /classify HTTP/1.1\r\nHost: t\r\nContent-Length: 20971521\r\n\r\n")
        answer = b""
        while received := sock.recv(65536):
            answer += received
    head, _, body = answer.partition(b"\r\n\r\n")
    return httpx.Response(int(head.split(b" ")[1]), content=body)


Request = Callable[[LiveServer], httpx.Response]
OUR_ENVELOPE: list[tuple[str, int, Request]] = [
    ("bad_request", 400, lambda s: s.client.post("/classify", files={"note": (None, "x")})),
    ("empty_image", 400, lambda s: s.client.post("/classify", content=b"", headers=PNG)),
    (
        "corrupt_image",
        400,
        lambda s: s.client.post(
            "/classify", content=(EXAMPLES / "digit.png").read_bytes()[:100], headers=PNG
        ),
    ),
    ("payload_too_large", 413, too_large_body),
    (
        "too_many_images",
        413,
        lambda s: s.client.post(
            "/classify", files=[("image", ("d.png", (EXAMPLES / "digit.png").read_bytes()))] * 17
        ),
    ),
    (
        "image_too_large",
        413,
        lambda s: s.client.post("/classify", content=png_declaring(8000, 6000), headers=PNG),
    ),
    (
        "unsupported_media_type",
        415,
        lambda s: s.client.post("/classify", content=b"hello", headers={"Content-Type": "text/plain"}),
    ),
    (
        "unsupported_image",
        415,
        lambda s: s.client.post(
            "/classify", files=[("image", star()["image"]), ("image", ("notes.txt", b"hello", "text/plain"))]
        ),
    ),
    ("model_not_found", 404, lambda s: s.client.post("/classify", params={"model": "nope"}, files=star())),
    ("invalid_parameter", 422, lambda s: s.client.post("/classify", params={"top_k": 0}, files=star())),
    (
        "wrong_task",
        422,
        lambda s: s.client.post("/classify", params={"model": "shapes-segmenter"}, files=star()),
    ),
    ("cannot_explain", 422, lambda s: s.client.post("/explain", params={"model": "digits"}, files=star())),
    ("unknown_label", 422, lambda s: s.client.post("/explain", params={"class": "cat"}, files=star())),
]
# The route whose documented examples hold a code, where it is not /classify.
DOCUMENTED_ON = {"cannot_explain": "/explain", "unknown_label": "/explain"}


@pytest.mark.parametrize(("code", "status", "send"), OUR_ENVELOPE, ids=[case[0] for case in OUR_ENVELOPE])
def test_each_task_error_example_is_a_real_answer(
    bundled_server: LiveServer, code: str, status: int, send: Request
) -> None:
    answer = send(bundled_server)
    assert answer.status_code == status, answer.text
    assert_like(error_example(code, DOCUMENTED_ON.get(code, "/classify"), status), answer.json())


def test_the_auth_examples_are_real_answers(bundled_guarded_server: LiveServer) -> None:
    url = bundled_guarded_server.url
    anonymous = httpx.post(f"{url}/classify", files=star())
    assert anonymous.status_code == 401
    assert_like(error_example("unauthorized", "/classify", 401), anonymous.json())
    wrong = httpx.post(f"{url}/classify", files=star(), headers={"X-API-Key": "not-the-key"})
    assert wrong.status_code == 403
    assert_like(error_example("forbidden", "/classify", 403), wrong.json())
    v2 = httpx.get(f"{url}/v2/models/digits")
    assert v2.status_code == 401
    assert_like(error_example("unauthorized", "/v2/models/{name}", 401), v2.json())


V2_ERRORS: list[tuple[str, str, int, Request]] = [
    ("model_not_found", "/v2/models/{name}", 404, lambda s: s.client.get("/v2/models/nope")),
    (
        "invalid_parameter",
        "/v2/models/{name}/versions/{version}/ready",
        400,
        lambda s: s.client.get("/v2/models/digits/versions/0/ready"),
    ),
    (
        "invalid_input",
        "/v2/models/{name}/infer",
        400,
        lambda s: s.client.post(
            "/v2/models/digits/infer",
            json={"inputs": [{"name": "image", "shape": [1, 2, 2, 3], "datatype": "FP32", "data": [0] * 12}]},
        ),
    ),
]


@pytest.mark.parametrize(("code", "path", "status", "send"), V2_ERRORS, ids=[case[0] for case in V2_ERRORS])
def test_each_v2_error_example_is_a_real_answer(
    bundled_server: LiveServer, code: str, path: str, status: int, send: Request
) -> None:
    answer = send(bundled_server)
    assert answer.status_code == status, answer.text
    assert_like(error_example(code, path, status), answer.json())


@pytest.fixture(scope="module")
def controlled(
    start_server: ServerFactory, tmp_path_factory: pytest.TempPathFactory
) -> tuple[LiveServer, Path]:
    root = tmp_path_factory.mktemp("repository")
    shutil.copytree(REPO_ROOT / "models" / "digits", root / "digits")
    server = start_server(root, default_models='{"classify": "digits"}', admin_key=BUNDLED_KEYS["admin"])
    return server, root


def test_the_model_repository_examples_are_real_answers(controlled: tuple[LiveServer, Path]) -> None:
    server, root = controlled
    admin = {"X-API-Key": BUNDLED_KEYS["admin"]}
    (root / "digits" / "2").mkdir()
    (root / "digits" / "2" / "model.onnx").write_bytes(b"garbage")
    cases = [
        (
            "load_failed",
            "/v2/repository/models/{name}/load",
            400,
            "/v2/repository/models/digits/load",
            admin,
            b"",
        ),
        ("invalid_input", "/v2/repository/index", 400, "/v2/repository/index", admin, b'{"ready": "maybe"}'),
        ("unauthorized", "/v2/repository/index", 401, "/v2/repository/index", {}, b""),
        ("forbidden", "/v2/repository/index", 403, "/v2/repository/index", {"X-API-Key": "x" * 16}, b""),
        (
            "model_not_found",
            "/v2/repository/models/{name}/load",
            404,
            "/v2/repository/models/nope/load",
            admin,
            b"",
        ),
    ]
    for code, path, status, url, headers, body in cases:
        answer = server.client.post(url, headers=headers, content=body)
        assert answer.status_code == status, (code, answer.text)
        assert_like(error_example(code, path, status), answer.json())


@pytest.mark.parametrize(
    ("schema", "path", "file", "params"),
    [
        ("ClassifyResponse", "/classify", "star.jpg", {"top_k": 2}),
        ("DetectResponse", "/detect", "shapes.jpg", {}),
        ("SegmentResponse", "/segment/json", "star.jpg", {}),
    ],
)
def test_each_task_answer_example_is_the_bundled_models_answer(
    bundled_server: LiveServer, schema: str, path: str, file: str, params: dict[str, int]
) -> None:
    answer = bundled_server.client.post(
        path, params=params, files={"image": (file, (EXAMPLES / file).read_bytes())}
    )
    assert answer.status_code == 200, answer.text
    assert_same_answer(body_example(schema), answer.json())


def test_the_v2_infer_examples_are_a_real_request_and_its_answer(bundled_server: LiveServer) -> None:
    assert body_example("InferRequest") == V2_INFER_REQUEST
    answer = bundled_server.client.post("/v2/models/digits/infer", json=body_example("InferRequest"))
    assert answer.status_code == 200, answer.text
    assert_same_answer(body_example("InferResponse"), answer.json())
