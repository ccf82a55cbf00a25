"""What route handlers share: the settings, the ready model registry and the worker pools."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from service.errors import (
    BadRequestError,
    ForbiddenError,
    NotReadyError,
    PayloadTooLargeError,
    ServiceError,
    TooManyImagesError,
    UnauthorizedError,
    UnsupportedMediaTypeError,
)
from service.registry import ModelRegistry
from service.schemas import ErrorResponse
from service.settings import Settings


@dataclass
class ServiceState:
    """Built at start-up; `registry` is None until the model repository has been loaded and warmed up."""

    settings: Settings
    decode_pool: ThreadPoolExecutor
    registry: ModelRegistry | None = None
    load_error: str | None = None


def state_of(request: Request) -> ServiceState:
    return request.app.state.service


# Both are `async def` on purpose: FastAPI runs a plain `def` dependency in its thread pool, a thread hop
# per request for an attribute lookup. Neither depends on another: each sub-dependency costs a resolution.
async def service_state(request: Request) -> ServiceState:
    return state_of(request)


async def ready_registry(request: Request) -> ModelRegistry:
    state = state_of(request)
    if state.registry is None:
        reason = state.load_error or "models are still loading"
        raise NotReadyError(f"not ready: {reason}", headers={"Retry-After": "1"})
    return state.registry


State = Annotated[ServiceState, Depends(service_state)]
Registry = Annotated[ModelRegistry, Depends(ready_registry)]


def error_responses(*errors: type[ServiceError]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the errors a route can answer, all in the error envelope."""
    responses: dict[int | str, dict[str, Any]] = {}
    for error in errors:
        entry = responses.setdefault(error.status, {"model": ErrorResponse, "description": ""})
        entry["description"] = " / ".join(filter(None, [entry["description"], error.code]))
    return responses


AUTH_ERRORS = (UnauthorizedError, ForbiddenError)
UPLOAD_ERRORS = (BadRequestError, PayloadTooLargeError, TooManyImagesError, UnsupportedMediaTypeError)
