"""What route handlers share: the engine, and the OpenAPI entries of their errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, get_args, get_type_hints

from fastapi import Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError

from service.api.schemas import ErrorResponse
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


def engine_of(request: Request) -> Engine:
    """The app's engine; it exists from start-up on, loading or not (readiness tells). The inference routes
    call this rather than take `EngineDep`: each dependency FastAPI resolves costs ~15 us of event loop."""
    return request.app.state.engine


# `async def` on purpose: FastAPI runs a plain `def` dependency in its thread pool, a thread hop per request
# for an attribute lookup.
async def _engine(request: Request) -> Engine:
    return engine_of(request)


EngineDep = Annotated[Engine, Depends(_engine)]

Guard = Callable[[Request], None]
Handler = Callable[[Request], Awaitable[Response]]


class FastRoute(APIRoute):
    """A route whose `handler` takes the request as it arrives: what service.http.gate calls directly."""

    handler: Handler


def fast_query_route(declared: Callable[..., Any], guard: Guard) -> type[APIRoute]:
    """A route class for handlers `(request, options: Annotated[SomeModel, Query()])` whose one dependency
    is `declared`: it runs `guard`, the same check, and validates the query into the model itself. FastAPI's
    dependency solver did the same for about a fifth of the event loop's time per request; the route is
    declared as before, so the OpenAPI document (parameters and security schemes) is FastAPI's own."""

    class FastQueryRoute(FastRoute):
        def get_route_handler(self) -> Handler:
            dependencies = [depends.dependency for depends in self.dependencies]
            if dependencies != [declared]:
                # Any other dependency would be declared in the document but never run.
                raise TypeError(f"{self.path} may depend on {declared.__name__} only, not {dependencies}")
            endpoint = self.endpoint
            options = _query_model(endpoint)
            if not options.model_config.get("frozen"):
                raise TypeError(f"{self.path}: {options.__name__} must be frozen, its instances are shared")

            async def handler(request: Request) -> Response:
                guard(request)
                return await endpoint(request, _validated_query(options, request))

            self.handler = handler
            return handler

    return FastQueryRoute


def _query_model(endpoint: Callable[..., Any]) -> type[BaseModel]:
    hints = get_type_hints(endpoint, include_extras=True)
    return get_args(hints["options"])[0]


# Clients repeat the same few query strings: their options (frozen models) are kept, up to this many, and
# each repeat costs a lookup instead of parsing and validating the query again.
KNOWN_QUERIES = 256
_known: dict[tuple[type[BaseModel], bytes], BaseModel] = {}


def _validated_query(model: type[BaseModel], request: Request) -> BaseModel:
    key = (model, request.scope["query_string"])
    options = _known.get(key)
    if options is not None:
        return options
    try:
        options = model.model_validate(dict(request.query_params))
    except ValidationError as exc:
        # Located as FastAPI locates them, so the error answer reads the same.
        raise RequestValidationError(
            [{**error, "loc": ("query", *error["loc"])} for error in exc.errors()]
        ) from None
    if len(_known) < KNOWN_QUERIES:
        _known[key] = options
    return options


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
