"""Triton's model repository extension: list the repository, load (or reload) and unload a model.

Off unless the operator sets `VISION_ADMIN_KEY`, and then only that key opens it. A load is load-then-swap
(service.core.repository): the old version serves until the new one is warm, so no request is lost.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel

from service.api.terms import MODEL_NAME_PATTERN
from service.core import dataplane
from service.core.errors import InvalidInputError, ModelLoadError, ModelNotFoundError, NotReadyError
from service.core.repository import ModelState
from service.http import oip
from service.http.auth import require_admin_key
from service.http.errors import ForbiddenError, InvalidParameterError, UnauthorizedError
from service.http.examples import REPOSITORY_EXAMPLES
from service.http.routes.dependencies import BODY_ERRORS, EngineDep, error_responses

router = APIRouter(
    prefix="/v2/repository", tags=["model repository"], dependencies=[Depends(require_admin_key)]
)

ModelPath = Annotated[str, Path(pattern=MODEL_NAME_PATTERN, description="Model name.")]
_ERRORS = error_responses(
    UnauthorizedError,
    ForbiddenError,
    *BODY_ERRORS,
    InvalidInputError,
    NotReadyError,
    v2=True,
    examples=REPOSITORY_EXAMPLES,
)
_LOAD_ERRORS = error_responses(
    UnauthorizedError,
    ForbiddenError,
    *BODY_ERRORS,
    InvalidInputError,
    InvalidParameterError,
    ModelLoadError,
    ModelNotFoundError,
    NotReadyError,
    v2=True,
    examples=REPOSITORY_EXAMPLES,
)


def _optional_json(schema: type[BaseModel]) -> dict[str, Any]:
    """An optional JSON body, read whatever its Content-Type: tritonclient sends none."""
    reference = {"$ref": f"#/components/schemas/{schema.__name__}"}
    return {"requestBody": {"required": False, "content": {"application/json": {"schema": reference}}}}


@router.post(
    "/index",
    response_model=list[oip.RepositoryIndexEntry],
    responses=_ERRORS,
    openapi_extra=_optional_json(oip.RepositoryIndexRequest),
    summary="Repository index",
)
async def repository_index(engine: EngineDep, request: Request) -> list[oip.RepositoryIndexEntry]:
    """Every model version found in the repository, served or refused with the reason."""
    ready_only = oip.parse_control(await request.body(), oip.RepositoryIndexRequest).ready
    return _entries(dataplane.repository_index(engine, ready_only))


@router.post(
    "/models/{name}/load",
    response_model=list[oip.RepositoryIndexEntry],
    responses=_LOAD_ERRORS,
    openapi_extra=_optional_json(oip.ModelControlRequest),
    summary="Load or reload a model",
)
async def load_model(engine: EngineDep, name: ModelPath, request: Request) -> list[oip.RepositoryIndexEntry]:
    """Load every new or changed version of `name` beside what serves, then swap; answers its versions."""
    oip.parse_control(await request.body(), oip.ModelControlRequest)
    return _entries(await dataplane.load_model(engine, name))


@router.post(
    "/models/{name}/unload",
    response_model=list[oip.RepositoryIndexEntry],
    responses=_LOAD_ERRORS,
    openapi_extra=_optional_json(oip.ModelControlRequest),
    summary="Unload a model",
)
async def unload_model(
    engine: EngineDep, name: ModelPath, request: Request
) -> list[oip.RepositoryIndexEntry]:
    """Stop serving every version of `name` (calls in flight finish) until it is loaded again."""
    oip.parse_control(await request.body(), oip.ModelControlRequest)
    await dataplane.unload_model(engine, name)
    return []


def _entries(states: Iterable[ModelState]) -> list[oip.RepositoryIndexEntry]:
    return [
        oip.RepositoryIndexEntry(name=s.name, version=s.version, state=s.state, reason=s.reason)
        for s in states
    ]
