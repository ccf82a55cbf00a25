"""API keys: open when none are configured; else `X-API-Key` or `Authorization: Bearer` must match one.

Configuration fails closed: a configured key file that is missing, unreadable or empty stops the service at
start, and once keys are configured nothing turns the API open again. The file is re-read when it changes,
so keys rotate without a restart; if it later becomes unreadable or empty its keys are dropped (logged), and
only `VISION_API_KEYS` keep working.
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param

from service.http.errors import ForbiddenError, UnauthorizedError
from service.settings import Settings

logger = logging.getLogger("vision.auth")

# How often a request may look at the key file's mtime and size: one stat a second at most.
RECHECK_SECONDS = 1.0

_api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="One of VISION_API_KEYS.")
_bearer = HTTPBearer(auto_error=False, description="One of VISION_API_KEYS as a bearer token.")


class AuthConfigError(ValueError):
    """The key configuration cannot be honoured: the service must not start open by accident."""


class ApiKeys:
    """The accepted keys: the fixed ones (`VISION_API_KEYS`) and those of the key file, kept current."""

    def __init__(self, fixed: Iterable[str], file: Path | None) -> None:
        self._fixed = frozenset(fixed)
        self._file = file
        self._file_keys, self._stamp = _read_key_file(file) if file is not None else (frozenset(), None)
        self._checked = time.monotonic()

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiKeys:
        """The keys the settings name; AuthConfigError when they cannot protect what they are asked to."""
        keys = cls(settings.api_keys, settings.api_keys_file)
        if settings.protect_metrics and not keys.required:
            raise AuthConfigError(
                "VISION_PROTECT_METRICS needs keys: set VISION_API_KEYS or VISION_API_KEYS_FILE"
            )
        return keys

    @property
    def required(self) -> bool:
        """Whether requests need a key: decided once at start, so no later failure can open the API."""
        return bool(self._fixed) or self._file is not None

    def accepts(self, presented: str) -> bool:
        """Whether `presented` is one of the current keys, compared in constant time against every key."""
        keys = self._fixed | self._current_file_keys()
        return any(hmac.compare_digest(presented.encode(), key.encode()) for key in keys)

    def _current_file_keys(self) -> frozenset[str]:
        if self._file is None or time.monotonic() - self._checked < RECHECK_SECONDS:
            return self._file_keys
        self._checked = time.monotonic()
        try:
            stamp = _stamp_of(self._file)
            if stamp != self._stamp:
                self._file_keys, self._stamp = _read_key_file(self._file)
                logger.info("API key file %s re-read: %d keys", self._file, len(self._file_keys))
        except AuthConfigError as exc:
            if self._file_keys:
                logger.error("%s; its keys are no longer accepted", exc)
            self._file_keys, self._stamp = frozenset(), None
        return self._file_keys


def _stamp_of(path: Path) -> tuple[int, int]:
    try:
        status = os.stat(path)
    except OSError as exc:
        raise AuthConfigError(f"VISION_API_KEYS_FILE {path}: {exc.strerror}") from None
    return status.st_mtime_ns, status.st_size


def _read_key_file(path: Path) -> tuple[frozenset[str], tuple[int, int]]:
    """The keys of `path` (one a line; blank lines and `#` comments skipped) and the stamp read with them."""
    stamp = _stamp_of(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise AuthConfigError(f"VISION_API_KEYS_FILE {path} cannot be read: {exc}") from None
    keys = frozenset(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))
    if not keys:
        raise AuthConfigError(f"VISION_API_KEYS_FILE {path} holds no key (one a line; # starts a comment)")
    return keys, stamp


def presented_key(request: Request) -> str | None:
    """The key a request carries, as `X-API-Key` or `Authorization: Bearer`, read as FastAPI's own
    `APIKeyHeader` and `HTTPBearer` read them."""
    header = request.headers.get("x-api-key")
    if header:
        return header
    scheme, credentials = get_authorization_scheme_param(request.headers.get("authorization"))
    if scheme.lower() != "bearer":
        return None
    return credentials or None


def key_accepted(request: Request) -> bool:
    """Whether the request may see what keys protect: always when the API is open."""
    keys: ApiKeys = request.app.state.api_keys
    presented = presented_key(request)
    return not keys.required or (presented is not None and keys.accepts(presented))


def _check(keys: ApiKeys, presented: str | None) -> None:
    if not keys.required:
        return
    if presented is None:
        raise UnauthorizedError(
            "an API key is required: send it as X-API-Key or Authorization: Bearer",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not keys.accepts(presented):
        raise ForbiddenError("the API key is not accepted")


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
    admin_key = request.app.state.settings.admin_key
    if admin_key is None:
        raise ForbiddenError("model control is off: the operator has not set VISION_ADMIN_KEY")
    presented = presented_key(request)
    if presented is None:
        raise UnauthorizedError(
            "the admin key is required: send it as X-API-Key or Authorization: Bearer",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not hmac.compare_digest(presented.encode(), admin_key.get_secret_value().encode()):
        raise ForbiddenError("the admin key is not accepted")


async def require_operator_key(request: Request) -> None:
    """The key check for `/metrics`, when `VISION_PROTECT_METRICS` puts it behind the API keys."""
    if request.app.state.settings.protect_metrics:
        _check(request.app.state.api_keys, presented_key(request))
