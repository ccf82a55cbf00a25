"""Logging: every record (uvicorn's too) to stderr as JSON lines or text, and one access line per request."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal

# Probes and scrapes arrive every few seconds; their access lines are DEBUG so they do not drown real traffic.
QUIET_ROUTES = frozenset(
    {"/healthz/live", "/healthz/ready", "/metrics", "/v2/health/live", "/v2/health/ready"}
)
_LOGGED_MARK = "_vision_logged"

access_logger = logging.getLogger("vision.access")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then any structured `fields`."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """Human-readable lines for a terminal, with the structured fields as key=value pairs."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = getattr(record, "fields", None)
        if fields:
            line += " " + " ".join(f"{key}={json.dumps(value, default=str)}" for key, value in fields.items())
        return line


def access_level(route: str) -> int | None:
    """The level of a request's access line on `route`, or None when nothing would log it."""
    level = logging.DEBUG if route in QUIET_ROUTES else logging.INFO
    return level if access_logger.isEnabledFor(level) else None


def log_access(level: int, fields: dict[str, Any]) -> None:
    """The request's one access line: method, route template and status, with its structured fields."""
    access_logger.log(
        level, "%s %s %d", fields["method"], fields["route"], fields["status"], extra={"fields": fields}
    )


def mark_logged(exc: BaseException) -> None:
    """Note that `exc` has been logged with its request id, so uvicorn's copy of it can be dropped."""
    setattr(exc, _LOGGED_MARK, True)


def is_logged(exc: BaseException | None) -> bool:
    return getattr(exc, _LOGGED_MARK, False)


class _DropAlreadyLogged(logging.Filter):
    """Starlette re-raises a handled 500's exception and uvicorn logs it again, without the request id."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not is_logged(record.exc_info[1] if record.exc_info else None)


def configure_logging(level: str, fmt: Literal["json", "text"]) -> None:
    """Send every record (uvicorn's included) to stderr as JSON lines or text; idempotent."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "vision_handler", False)]:
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.vision_handler = True  # type: ignore[attr-defined]
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root.addHandler(handler)
    root.setLevel(level.upper())
    # uvicorn installs its own handlers before it imports the app; route its records through ours instead.
    for name in ("uvicorn", "uvicorn.error"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    uvicorn_errors = logging.getLogger("uvicorn.error")
    for duplicate in [f for f in uvicorn_errors.filters if isinstance(f, _DropAlreadyLogged)]:
        uvicorn_errors.removeFilter(duplicate)
    uvicorn_errors.addFilter(_DropAlreadyLogged())
    # Our access line replaces uvicorn's, which lacks request id, route template and timings.
    logging.getLogger("uvicorn.access").disabled = True
