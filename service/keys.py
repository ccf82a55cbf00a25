"""API keys and the admin key, whatever the protocol asks for them: open when no keys are configured; else
a key must match one. Configuration fails closed: a configured key file that is missing, unreadable or empty
stops the service at start, and once keys are configured nothing turns the API open again. The file is re-read
when it changes, so keys rotate without a restart; if it later becomes unreadable or empty its keys are
dropped (logged), and only `VISION_API_KEYS` keep working. Each refusal reads the same over HTTP and gRPC.
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from service.settings import Settings

logger = logging.getLogger("vision.auth")

# How often a request may look at the key file's mtime and size: one stat a second at most.
RECHECK_SECONDS = 1.0


@dataclass(frozen=True)
class KeyRefusal:
    """Why a call is refused: no key (`missing`, HTTP 401) or a wrong one (HTTP 403), and what it is told."""

    missing: bool
    message: str


def refuse_api_key(keys: ApiKeys, presented: str | None) -> KeyRefusal | None:
    """None when `presented` may call what the API keys protect."""
    if not keys.required:
        return None
    if presented is None:
        return KeyRefusal(True, "an API key is required: send it as X-API-Key or Authorization: Bearer")
    if not keys.accepts(presented):
        return KeyRefusal(False, "the API key is not accepted")
    return None


def refuse_admin_key(admin_key: SecretStr | None, presented: str | None) -> KeyRefusal | None:
    """None when `presented` opens model control: off without `VISION_ADMIN_KEY`, else only that key."""
    if admin_key is None:
        return KeyRefusal(False, "model control is off: the operator has not set VISION_ADMIN_KEY")
    if presented is None:
        return KeyRefusal(True, "the admin key is required: send it as X-API-Key or Authorization: Bearer")
    if not hmac.compare_digest(presented.encode(), admin_key.get_secret_value().encode()):
        return KeyRefusal(False, "the admin key is not accepted")
    return None


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` value, split as FastAPI's `HTTPBearer` splits it."""
    scheme, _, token = (authorization or "").partition(" ")
    return (token or None) if scheme.lower() == "bearer" else None


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
