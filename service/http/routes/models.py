"""`GET /models` and `GET /models/{name}`: what is loaded, what it answers, and what was refused."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path

from service.api.schemas import ModelInfo, ModelsResponse
from service.api.terms import MODEL_NAME_PATTERN
from service.core.errors import NotReadyError
from service.http.auth import require_api_key
from service.http.routes.dependencies import AUTH_ERRORS, MODEL_ERRORS, EngineDep, error_responses

router = APIRouter(dependencies=[Depends(require_api_key)], tags=["models"])


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
async def get_model(
    engine: EngineDep, name: str = Path(pattern=MODEL_NAME_PATTERN, description="Model name.")
) -> ModelInfo:
    """One model: task, labels, input size, provider and held-out metrics of each loaded version."""
    engine.find(name)
    return ModelInfo.of(engine, name)
