"""`GET /models` and `GET /models/{name}`: what is loaded, what it answers, and what was refused."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path

from service.auth import require_api_key
from service.errors import ModelNotFoundError, NotReadyError
from service.registry import LoadedModel, ModelRegistry
from service.routes.dependencies import AUTH_ERRORS, Registry, error_responses
from service.routes.inference import MODEL_NAME_PATTERN
from service.schemas import LoadedVersion, LoadFailureInfo, ModelInfo, ModelsResponse

router = APIRouter(dependencies=[Depends(require_api_key)], tags=["models"])


def _version_info(model: LoadedModel) -> LoadedVersion:
    meta = model.metadata
    return LoadedVersion(
        version=meta.version,
        task=meta.task,
        labels=list(meta.labels),
        input=meta.input,
        resize=meta.resize,
        provider="cuda" if model.device == "cuda" else "cpu",
        metrics=meta.metrics,
        trained=meta.trained,
    )


def _model_info(registry: ModelRegistry, name: str) -> ModelInfo:
    latest = registry.latest(name)
    task = latest.metadata.task
    return ModelInfo(
        name=name,
        task=task,
        default_for=task if registry.defaults.get(task) == name else None,
        latest=latest.metadata.version,
        versions=[_version_info(model) for model in registry.loaded() if model.metadata.name == name],
    )


@router.get(
    "/models",
    response_model=ModelsResponse,
    responses=error_responses(*AUTH_ERRORS, NotReadyError),
    summary="List loaded models",
)
async def list_models(registry: Registry) -> ModelsResponse:
    """Every loaded model with its versions, and every model file that was refused with the reason."""
    return ModelsResponse(
        models=[_model_info(registry, name) for name in sorted(registry.models)],
        failures=[
            LoadFailureInfo(name=f.name, version=f.version, key=f.key, message=f.message)
            for f in registry.failures
        ],
    )


@router.get(
    "/models/{name}",
    response_model=ModelInfo,
    responses=error_responses(*AUTH_ERRORS, ModelNotFoundError, NotReadyError),
    summary="Describe one model",
)
async def get_model(
    registry: Registry, name: str = Path(pattern=MODEL_NAME_PATTERN, description="Model name.")
) -> ModelInfo:
    """One model: task, labels, input size, provider and held-out metrics of each loaded version."""
    registry.find(name)
    return _model_info(registry, name)
