"""What route handlers share: the engine, and the OpenAPI entries of their errors."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from service.core.engine import Engine
from service.core.errors import (
    CorruptImageError,
    EmptyImageError,
    ImageTooLargeError,
    ModelNotFoundError,
    NotReadyError,
    OverloadedError,
    ServiceError,
    TooManyImagesError,
    UnsupportedImageError,
    WrongTaskError,
)
from service.http.errors import (
    BadRequestError,
    DeadlineExceededError,
    ForbiddenError,
    InvalidParameterError,
    PayloadTooLargeError,
    RequestTimeoutError,
    ShuttingDownError,
    UnauthorizedError,
    UnsupportedMediaTypeError,
    status_of,
)
from service.http.examples import Examples, error_examples
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


def error_responses(
    *errors: type[ServiceError], v2: bool = False, examples: Examples | None = None
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the errors a route can answer: each status, and a real answer for each code."""
    codes: dict[int, list[str]] = {}
    for error in errors:
        codes.setdefault(status_of(error.code, v2=v2), []).append(error.code)
    body = V2Error if v2 else ErrorResponse
    return {
        status: {
            "model": body,
            "description": " / ".join(listed),
            "content": {"application/json": {"examples": error_examples(listed, v2=v2, overrides=examples)}},
        }
        for status, listed in codes.items()
    }


AUTH_ERRORS = (UnauthorizedError, ForbiddenError)
# What reading a body can answer anywhere, tensors included.
BODY_ERRORS = (RequestTimeoutError, PayloadTooLargeError, ShuttingDownError, DeadlineExceededError)
UPLOAD_ERRORS = (
    *BODY_ERRORS,
    BadRequestError,
    EmptyImageError,
    CorruptImageError,
    TooManyImagesError,
    ImageTooLargeError,
    UnsupportedMediaTypeError,
    UnsupportedImageError,
)
TASK_ERRORS = (
    *AUTH_ERRORS,
    *UPLOAD_ERRORS,
    ModelNotFoundError,
    InvalidParameterError,
    WrongTaskError,
    OverloadedError,
    NotReadyError,
)
MODEL_ERRORS = (*AUTH_ERRORS, ModelNotFoundError, InvalidParameterError, NotReadyError)
