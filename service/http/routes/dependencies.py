"""What route handlers share: the engine, and the OpenAPI entries of their errors."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from service.core.engine import Engine
from service.core.errors import (
    ModelNotFoundError,
    NotReadyError,
    OverloadedError,
    ServiceError,
    TooManyImagesError,
    WrongTaskError,
)
from service.http.errors import (
    BadRequestError,
    ForbiddenError,
    InvalidParameterError,
    PayloadTooLargeError,
    UnauthorizedError,
    UnsupportedMediaTypeError,
    status_of,
)
from service.http.oip import V2Error
from service.http.schemas import ErrorResponse


def engine_of(request: Request) -> Engine:
    """The app's engine; it exists from start-up on, loading or not (readiness tells). The inference routes
    call this rather than take `EngineDep`: each dependency FastAPI resolves costs ~15 us of event loop."""
    return request.app.state.engine


# `async def` on purpose: FastAPI runs a plain `def` dependency in its thread pool, a thread hop per request
# for an attribute lookup.
async def _engine(request: Request) -> Engine:
    return engine_of(request)


EngineDep = Annotated[Engine, Depends(_engine)]


def error_responses(*errors: type[ServiceError], v2: bool = False) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the errors a route can answer, each under its status."""
    responses: dict[int | str, dict[str, Any]] = {}
    body = V2Error if v2 else ErrorResponse
    for error in errors:
        status = status_of(error.code, v2=v2)
        entry = responses.setdefault(status, {"model": body, "description": ""})
        entry["description"] = " / ".join(filter(None, [entry["description"], error.code]))
    return responses


AUTH_ERRORS = (UnauthorizedError, ForbiddenError)
UPLOAD_ERRORS = (BadRequestError, PayloadTooLargeError, TooManyImagesError, UnsupportedMediaTypeError)
TASK_ERRORS = (
    *AUTH_ERRORS,
    *UPLOAD_ERRORS,
    ModelNotFoundError,
    InvalidParameterError,
    WrongTaskError,
    OverloadedError,
)
MODEL_ERRORS = (*AUTH_ERRORS, ModelNotFoundError, NotReadyError)
