"""The gate: a POST to a `FastRoute` is answered in the gate yet as FastAPI would answer it, errors included,
and every other request still goes through FastAPI."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import httpx
import pytest
from conftest import encode, solid
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from polling import wait_for
from scrape import sample_value
from threaded_server import gated_app, serving

from service.api.options import ClassifyOptions
from service.app import create_app
from service.http.auth import check_api_key, require_api_key
from service.http.errors import BadRequestError
from service.http.gate import GatedApp
from service.http.routes import tasks
from service.http.routes.dependencies import fast_query_route
from service.settings import Settings

UNLUCKY = 13
BUGGY = 99


def where(request: Request) -> JSONResponse:
    """What the handler saw: FastAPI's router leaves itself in the scope, the gate does not."""
    scope = request.scope
    return JSONResponse({"route": scope["route"].path, "via_router": "router" in scope})


def build_app() -> GatedApp:
    fast = APIRouter(
        dependencies=[Depends(require_api_key)], route_class=fast_query_route(require_api_key, check_api_key)
    )

    @fast.post("/echo")
    async def echo(request: Request, options: Annotated[ClassifyOptions, Query()]) -> Response:
        if options.top_k == UNLUCKY:
            raise BadRequestError("unlucky")
        if options.top_k == BUGGY:
            raise RuntimeError("a bug")
        return where(request)

    plain = APIRouter()

    @plain.post("/plain")
    async def plain_route(request: Request) -> Response:
        return where(request)

    app = gated_app()
    app.include_router(fast)
    app.include_router(plain)
    app.answer_in_gate([*fast.routes, *plain.routes])
    return app


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with serving(build_app()) as url, httpx.Client(base_url=url, timeout=10) as http:
        yield http


def test_a_fast_route_is_answered_in_the_gate_with_its_request_id_and_timing(client: httpx.Client) -> None:
    answer = client.post("/echo")
    assert answer.status_code == 200
    assert answer.json() == {"route": "/echo", "via_router": False}
    assert answer.headers["x-request-id"]
    assert "total;dur=" in answer.headers["server-timing"]


def test_other_routes_go_through_fastapi(client: httpx.Client) -> None:
    assert client.post("/plain").json() == {"route": "/plain", "via_router": True}


def test_other_methods_on_a_task_path_get_fastapis_answer(client: httpx.Client) -> None:
    answer = client.get("/echo")
    assert answer.status_code == 405
    assert answer.json()["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ("top_k=0", 422, "invalid_parameter"),
        (f"top_k={UNLUCKY}", 400, "bad_request"),
        (f"top_k={BUGGY}", 500, "internal_error"),
    ],
)
def test_errors_in_the_gate_are_the_apps_own_answers(
    client: httpx.Client, query: str, status: int, code: str
) -> None:
    answer = client.post(f"/echo?{query}")
    assert answer.status_code == status
    assert answer.json()["error"]["code"] == code
    assert answer.headers["x-request-id"]


# The same handler twice: answered in the gate, and declared to FastAPI under another path, which its router,
# dependency solver and exception handlers then serve.
THROUGH_FASTAPI = "/through-fastapi/classify"
KEY = "parity-key"


@pytest.fixture(scope="module")
def real_app(test_models_dir: Path) -> Iterator[str]:
    settings = Settings(
        models_dir=test_models_dir, api_keys=[KEY], max_upload_bytes=200_000, body_idle_seconds=1
    )
    app = create_app(settings)
    app.add_api_route(
        THROUGH_FASTAPI, tasks.classify, methods=["POST"], dependencies=[Depends(require_api_key)]
    )
    with serving(app, lifespan=True) as url:
        wait_for(lambda: httpx.get(f"{url}/healthz/ready").status_code == 200, timeout=60)
        yield url


def requests_counted(url: str, route: str, status: int) -> float:
    text = httpx.get(f"{url}/metrics").text
    labels = {"route": route, "method": "POST", "status": str(status)}
    return sample_value(text, "vision_requests_total", labels)


def exchange(
    url: str, path: str, request_id: str, *, key: str | None, head_extra: bytes, body: bytes
) -> bytes:
    """One raw request, `body` sent as given (perhaps short of its Content-Length), and the whole answer."""
    host, port = url.removeprefix("http://").split(":")
    headers = b"X-Request-ID: %s\r\n" % request_id.encode()
    if key is not None:
        headers += b"X-API-Key: %s\r\n" % key.encode()
    with socket.create_connection((host, int(port)), timeout=15) as sock:
        sock.sendall(
            b"POST %s HTTP/1.1\r\nHost: test\r\n%s%s\r\n%s" % (path.encode(), headers, head_extra, body)
        )
        answer = b""
        while received := sock.recv(65536):
            answer += received
            if b"\r\n\r\n" in answer:
                head, _, rest = answer.partition(b"\r\n\r\n")
                length = re.search(rb"content-length: (\d+)", head, re.I)
                if length and len(rest) >= int(length.group(1)):
                    break
        return answer


def parsed(answer: bytes) -> tuple[int, dict[str, str], object]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, value in (line.split(":", 1) for line in lines)}
    for varying in ("date", "server-timing", "content-length"):
        headers.pop(varying, None)
    return int(status_line.split()[1]), headers, json.loads(body)


PNG = encode(solid((200, 30, 30)), "PNG")
MULTIPART = b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: %d\r\n"
FORM = (
    b'--b\r\nContent-Disposition: form-data; name="image"; filename="a.png"\r\n\r\n' + PNG + b"\r\n--b--\r\n"
)
CASES = {
    "no key": ("", None, MULTIPART % len(FORM), FORM, 401),
    "wrong key": ("", "not-the-key", MULTIPART % len(FORM), FORM, 403),
    "oversize body": ("", KEY, MULTIPART % 5_000_000, b"", 413),
    "stalled body": ("", KEY, MULTIPART % 1000, FORM[:100], 408),
    "unknown model": ("?model=nope", KEY, MULTIPART % len(FORM), FORM, 404),
    "answered": ("", KEY, MULTIPART % len(FORM), FORM, 200),
}


@pytest.mark.parametrize("case", CASES)
def test_the_gate_and_fastapi_answer_alike(real_app: str, case: str) -> None:
    query, key, head_extra, body, status = CASES[case]
    seen = []
    for route in ("/classify", THROUGH_FASTAPI):
        before = requests_counted(real_app, route, status)
        request_id = f"parity-{case.replace(' ', '-')}"
        answer = exchange(real_app, route + query, request_id, key=key, head_extra=head_extra, body=body)
        answered_status, headers, document = parsed(answer)
        assert headers.pop("x-request-id") == request_id
        assert requests_counted(real_app, route, status) == before + 1
        seen.append((answered_status, headers, document))
    assert seen[0] == seen[1]
    assert seen[0][0] == status


def test_with_cors_the_task_routes_answer_through_its_middleware(test_models_dir: Path) -> None:
    origin = "https://playground.example"
    app = create_app(Settings(models_dir=test_models_dir, cors_origins=[origin]))
    with serving(app, lifespan=True) as url:
        wait_for(lambda: httpx.get(f"{url}/healthz/ready").status_code == 200, timeout=60)
        files = {"image": ("a.png", PNG, "image/png")}
        answer = httpx.post(f"{url}/classify", files=files, headers={"Origin": origin})
        refused = httpx.post(f"{url}/classify?top_k=0", files=files, headers={"Origin": origin})
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == origin
    assert answer.headers["x-request-id"]
    assert refused.status_code == 422
    assert refused.headers["access-control-allow-origin"] == origin
