"""API keys: open when none are configured; else `X-API-Key` or `Authorization: Bearer` must match one."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from service.http.errors import ForbiddenError, UnauthorizedError

_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="One of VISION_API_KEYS.")
_bearer = HTTPBearer(auto_error=False, description="One of VISION_API_KEYS as a bearer token.")


def _presented_key(header_key: str | None, bearer: HTTPAuthorizationCredentials | None) -> str | None:
    if header_key:
        return header_key
    return bearer.credentials if bearer is not None else None


def _matches(presented: str, keys: frozenset[str]) -> bool:
    # Compare against every key in constant time so timing does not reveal near misses.
    return any(hmac.compare_digest(presented.encode(), key.encode()) for key in keys)


async def require_api_key(
    request: Request,
    header_key: Annotated[str | None, Depends(_api_key_header)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    keys: frozenset[str] = request.app.state.settings.all_api_keys
    if not keys:
        return
    presented = _presented_key(header_key, bearer)
    if presented is None:
        raise UnauthorizedError(
            "an API key is required: send it as X-API-Key or Authorization: Bearer",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not _matches(presented, keys):
        raise ForbiddenError("the API key is not accepted")
