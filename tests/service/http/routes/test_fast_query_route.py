"""The task routes' class: it runs only the guard it was made for, so a route that declares another
dependency is refused when it is built, rather than documented and silently never run; and it validates a
repeated query once."""

from __future__ import annotations

from typing import Annotated

import pytest
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError

from service.api.options import ClassifyOptions
from service.http.auth import check_api_key, require_admin_key, require_api_key
from service.http.routes.dependencies import _validated_query, fast_query_route


async def endpoint(request: Request, options: Annotated[ClassifyOptions, Query()]) -> Response:
    return Response(str(options.top_k))


def test_a_route_with_another_dependency_is_refused_when_built() -> None:
    router = APIRouter(
        dependencies=[Depends(require_admin_key)],
        route_class=fast_query_route(require_api_key, check_api_key),
    )
    with pytest.raises(TypeError, match="may depend on require_api_key only"):
        router.post("/classify")(endpoint)


def test_a_route_with_its_declared_dependency_is_built() -> None:
    router = APIRouter(
        dependencies=[Depends(require_api_key)], route_class=fast_query_route(require_api_key, check_api_key)
    )
    router.post("/classify")(endpoint)
    assert [route.path for route in router.routes] == ["/classify"]


def test_a_repeated_query_is_validated_once_and_its_options_shared() -> None:
    scope = {"type": "http", "method": "POST", "path": "/", "headers": [], "query_string": b"top_k=2"}
    first = _validated_query(ClassifyOptions, Request(scope))
    assert first.top_k == 2
    assert _validated_query(ClassifyOptions, Request(dict(scope))) is first


def test_an_invalid_query_is_refused_every_time() -> None:
    scope = {"type": "http", "method": "POST", "path": "/", "headers": [], "query_string": b"top_k=0"}
    for _ in range(2):
        with pytest.raises(RequestValidationError):
            _validated_query(ClassifyOptions, Request(scope))
