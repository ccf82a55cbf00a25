"""`GET /models`, `GET /models/{name}` and its monitor: what is loaded, what it answers, what was refused,
and how its traffic compares with what it was trained on."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from service.api.schemas import ModelInfo, ModelsResponse, MonitorResponse
from service.api.terms import MODEL_NAME_PATTERN
from service.core.errors import NotReadyError
from service.http.auth import require_api_key
from service.http.routes.dependencies import AUTH_ERRORS, MODEL_ERRORS, EngineDep, error_responses

router = APIRouter(dependencies=[Depends(require_api_key)], tags=["models"])
ModelName = Annotated[str, Path(pattern=MODEL_NAME_PATTERN, description="Model name.")]


@router.get(
    "/models",
    response_model=ModelsResponse,
    responses=error_responses(*AUTH_ERRORS, NotReadyError),
    summary="List loaded models",
)
async def list_models(engine: EngineDep) -> ModelsResponse:
    """Every loaded model with its versions, and every model file that was refused with the reason."""
    return ModelsResponse.of(engine)


@router.get(
    "/models/{name}",
    response_model=ModelInfo,
    responses=error_responses(*MODEL_ERRORS),
    summary="Describe one model",
)
async def get_model(engine: EngineDep, name: ModelName) -> ModelInfo:
    """One model: task, labels, input size, provider and held-out metrics of each loaded version."""
    engine.find(name)
    return ModelInfo.of(engine, name)


@router.get(
    "/models/{name}/monitor",
    response_model=MonitorResponse,
    responses=error_responses(*MODEL_ERRORS),
    summary="Compare a model's recent traffic with its held-out images",
)
async def monitor_model(
    engine: EngineDep,
    name: ModelName,
    version: int | None = Query(default=None, ge=1, description="Model version; the highest when omitted."),
) -> MonitorResponse:
    """The version's last images (the window), signal by signal, beside the reference its file carries, with
    the population stability index of each. With several worker processes, the answering process's window."""
    return MonitorResponse.of(*engine.monitor(name, version))
