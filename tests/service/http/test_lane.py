"""The task routes' lane: a POST to a `FastRoute` skips FastAPI's layers yet answers as FastAPI would, errors
included, and every other request still goes through FastAPI."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

import httpx
import pytest
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from threaded_server import serving

from service.core.tasks.classify import ClassifyOptions
from service.http.auth import ApiKeys, check_api_key, require_api_key
from service.http.errors import BadRequestError, install_error_handlers
from service.http.lane import LaneApp
from service.http.middleware import ObservabilityMiddleware
from service.http.routes.dependencies import fast_query_route
from service.settings import Settings

UNLUCKY = 13
BUGGY = 99


def where(request: Request) -> JSONResponse:
    """What the handler saw: FastAPI's router leaves itself in the scope, the lane does not."""
    scope = request.scope
    return JSONResponse({"route": scope["route"].path, "via_router": "router" in scope})


def build_app() -> LaneApp:
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

    app = LaneApp()
    app.state.settings = Settings()
    app.state.api_keys = ApiKeys([], None)
    install_error_handlers(app)
    app.include_router(fast)
    app.include_router(plain)
    app.add_middleware(ObservabilityMiddleware)
    app.serve_in_lane([*fast.routes, *plain.routes])
    return app


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with serving(build_app()) as url, httpx.Client(base_url=url, timeout=10) as http:
        yield http


def test_a_fast_route_is_answered_in_the_lane_with_the_middleware_around_it(client: httpx.Client) -> None:
    answer = client.post("/echo")
    assert answer.status_code == 200
    assert answer.json() == {"route": "/echo", "via_router": False}
    assert answer.headers["x-request-id"]
    assert "total;dur=" in answer.headers["server-timing"]


def test_other_routes_go_through_fastapi(client: httpx.Client) -> None:
    assert client.post("/plain").json() == {"route": "/plain", "via_router": True}


def test_other_methods_on_a_lane_path_get_fastapis_answer(client: httpx.Client) -> None:
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
def test_errors_in_the_lane_are_the_apps_own_answers(
    client: httpx.Client, query: str, status: int, code: str
) -> None:
    answer = client.post(f"/echo?{query}")
    assert answer.status_code == status
    assert answer.json()["error"]["code"] == code
    assert answer.headers["x-request-id"]
