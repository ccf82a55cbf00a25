"""Triton's model repository extension: list the repository, load (or reload) and unload a model.

Off unless the operator sets `VISION_ADMIN_KEY`, and then only that key opens it. A load is load-then-swap
(service.core.repository): the old version serves until the new one is warm, so no request is lost.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path

from service.core.contract import MODEL_NAME_PATTERN
from service.core.errors import ModelNotFoundError, NotReadyError
from service.core.repository import ModelState
from service.http import oip
from service.http.auth import require_admin_key
from service.http.errors import BadRequestError, ForbiddenError, UnauthorizedError
from service.http.routes.dependencies import EngineDep, error_responses

router = APIRouter(
    prefix="/v2/repository", tags=["model repository"], dependencies=[Depends(require_admin_key)]
)

ModelPath = Annotated[str, Path(pattern=MODEL_NAME_PATTERN, description="Model name.")]
_ERRORS = error_responses(UnauthorizedError, ForbiddenError, NotReadyError, v2=True)
_LOAD_ERRORS = error_responses(
    UnauthorizedError, ForbiddenError, BadRequestError, ModelNotFoundError, NotReadyError, v2=True
)


@router.post(
    "/index", response_model=list[oip.RepositoryIndexEntry], responses=_ERRORS, summary="Repository index"
)
async def repository_index(
    engine: EngineDep, request: Annotated[oip.RepositoryIndexRequest | None, Body()] = None
) -> list[oip.RepositoryIndexEntry]:
    """Every model version found in the repository, served or refused with the reason."""
    ready_only = request is not None and request.ready
    return _entries(state for state in engine.index() if not ready_only or state.state == "READY")


@router.post(
    "/models/{name}/load",
    response_model=list[oip.RepositoryIndexEntry],
    responses=_LOAD_ERRORS,
    summary="Load or reload a model",
)
async def load_model(
    engine: EngineDep, name: ModelPath, _request: Annotated[oip.ModelControlRequest | None, Body()] = None
) -> list[oip.RepositoryIndexEntry]:
    """Load every new or changed version of `name` beside what serves, then swap; answers its versions."""
    states = [state for state in await engine.reload([name]) if state.name == name]
    if not states:
        raise ModelNotFoundError(f"no model named {name!r} in the repository")
    refused = [state for state in states if state.state == "UNAVAILABLE"]
    if refused:
        reasons = "; ".join(f"version {state.version}: {state.reason}" for state in refused)
        serving = [state.version for state in states if state.state == "READY"]
        still = f"; still serving version {', '.join(serving)}" if serving else ""
        raise BadRequestError(f"failed to load {name!r}: {reasons}{still}")
    return _entries(states)


@router.post(
    "/models/{name}/unload",
    response_model=list[oip.RepositoryIndexEntry],
    responses=_LOAD_ERRORS,
    summary="Unload a model",
)
async def unload_model(
    engine: EngineDep, name: ModelPath, _request: Annotated[oip.ModelControlRequest | None, Body()] = None
) -> list[oip.RepositoryIndexEntry]:
    """Stop serving every version of `name` (calls in flight finish) until it is loaded again."""
    engine.find(name)
    await engine.unload(name)
    return []


def _entries(states: Iterable[ModelState]) -> list[oip.RepositoryIndexEntry]:
    return [
        oip.RepositoryIndexEntry(name=s.name, version=s.version, state=s.state, reason=s.reason)
        for s in states
    ]
