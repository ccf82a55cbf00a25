"""API keys over HTTP: `X-API-Key` or `Authorization: Bearer`, checked before any body byte is read, as
service.keys decides (the keys themselves, their file, and the refusals every protocol gives)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from service.http.errors import ForbiddenError, UnauthorizedError
from service.keys import ApiKeys, KeyRefusal, bearer_token, refuse_admin_key, refuse_api_key

_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="One of VISION_API_KEYS.")
_bearer = HTTPBearer(auto_error=False, description="One of VISION_API_KEYS as a bearer token.")


def presented_key(request: Request) -> str | None:
    """The key a request carries, as `X-API-Key` or `Authorization: Bearer`, read as FastAPI's own
    `APIKeyHeader` and `HTTPBearer` read them."""
    return request.headers.get("x-api-key") or bearer_token(request.headers.get("authorization"))


def key_accepted(request: Request) -> bool:
    """Whether the request may see what keys protect: always when the API is open."""
    keys: ApiKeys = request.app.state.api_keys
    presented = presented_key(request)
    return not keys.required or (presented is not None and keys.accepts(presented))


def _check(keys: ApiKeys, presented: str | None) -> None:
    _raise(refuse_api_key(keys, presented))


def _raise(refusal: KeyRefusal | None) -> None:
    if refusal is None:
        return
    if refusal.missing:
        raise UnauthorizedError(refusal.message, headers={"WWW-Authenticate": "Bearer"})
    raise ForbiddenError(refusal.message)


async def require_api_key(
    request: Request,
    # Declared so /docs shows both security schemes; the key itself is read once, by `presented_key`.
    _header_key: Annotated[str | None, Depends(_api_key_header)],
    _bearer_key: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """401 without a key and 403 with a wrong one, wherever keys are configured; before any body is read."""
    check_api_key(request)


def check_api_key(request: Request) -> None:
    """`require_api_key` without FastAPI's dependency machinery, for routes that resolve none (the task
    routes: service.http.routes.dependencies.FastQueryRoute)."""
    keys: ApiKeys = request.app.state.api_keys
    if keys.required:
        _check(keys, presented_key(request))


async def require_admin_key(
    request: Request,
    _header_key: Annotated[str | None, Depends(_api_key_header)],
    _bearer_key: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """The model-control routes: off (403) without `VISION_ADMIN_KEY`, else only that key opens them."""
    _raise(refuse_admin_key(request.app.state.settings.admin_key, presented_key(request)))


async def require_operator_key(request: Request) -> None:
    """The key check for `/metrics`, when `VISION_PROTECT_METRICS` puts it behind the API keys."""
    if request.app.state.settings.protect_metrics:
        _check(request.app.state.api_keys, presented_key(request))
