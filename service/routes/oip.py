"""The Open Inference Protocol (KServe V2 / Triton) REST endpoints: health, metadata, tensor inference."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from fastapi import APIRouter, Depends, Path, Response

from service import __version__
from service.auth import require_api_key
from service.batching import QueueFullError
from service.errors import InvalidParameterError, ModelNotFoundError, NotReadyError, OverloadedError
from service.registry import LoadedModel, ModelRegistry
from service.routes.dependencies import AUTH_ERRORS, Registry, State, error_responses
from service.routes.health import readiness
from service.routes.inference import MODEL_NAME_PATTERN
from service.schemas import (
    InferRequest,
    InferResponse,
    ModelMetadataV2,
    OutputTensor,
    ServerMetadata,
    TensorMetadata,
)

router = APIRouter(prefix="/v2", tags=["open inference protocol"])
protected = APIRouter(prefix="/v2", tags=["open inference protocol"], dependencies=[Depends(require_api_key)])

ModelPath = Annotated[str, Path(pattern=MODEL_NAME_PATTERN, description="Model name.")]
VersionPath = Annotated[int, Path(ge=1, description="Model version.")]
_ERRORS = error_responses(*AUTH_ERRORS, ModelNotFoundError, NotReadyError)


@router.get("", response_model=ServerMetadata, summary="Server metadata")
async def server_metadata() -> ServerMetadata:
    return ServerMetadata(name="vision-service", version=__version__)


@router.get("/health/live", summary="Server live")
async def server_live() -> Response:
    return Response(status_code=200)


@router.get("/health/ready", summary="Server ready")
async def server_ready(state: State) -> Response:
    return Response(status_code=200 if readiness(state).status == "ok" else 503)


def _metadata(registry: ModelRegistry, model: LoadedModel) -> ModelMetadataV2:
    spec = model.metadata.input
    session = model.session
    return ModelMetadataV2(
        name=model.metadata.name,
        versions=[str(version) for version in sorted(registry.models[model.metadata.name])],
        inputs=[
            TensorMetadata(
                name=spec.name, datatype="FP32", shape=[-1, spec.height, spec.width, spec.channels]
            )
        ],
        outputs=[
            TensorMetadata(
                name=out.name, datatype="FP32", shape=[d if isinstance(d, int) else -1 for d in out.shape]
            )
            for out in session.get_outputs()
        ],
    )


@protected.get("/models/{name}", response_model=ModelMetadataV2, responses=_ERRORS, summary="Model metadata")
async def model_metadata(registry: Registry, name: ModelPath) -> ModelMetadataV2:
    return _metadata(registry, registry.find(name))


@protected.get(
    "/models/{name}/versions/{version}",
    response_model=ModelMetadataV2,
    responses=_ERRORS,
    summary="Model version metadata",
)
async def model_version_metadata(
    registry: Registry, name: ModelPath, version: VersionPath
) -> ModelMetadataV2:
    return _metadata(registry, registry.find(name, version))


@protected.get("/models/{name}/ready", responses=_ERRORS, summary="Model ready")
async def model_ready(registry: Registry, name: ModelPath) -> Response:
    registry.find(name)
    return Response(status_code=200)


@protected.get("/models/{name}/versions/{version}/ready", responses=_ERRORS, summary="Model version ready")
async def model_version_ready(registry: Registry, name: ModelPath, version: VersionPath) -> Response:
    registry.find(name, version)
    return Response(status_code=200)


_INFER_ERRORS = error_responses(
    *AUTH_ERRORS, ModelNotFoundError, NotReadyError, InvalidParameterError, OverloadedError
)


@protected.post(
    "/models/{name}/infer", response_model=InferResponse, responses=_INFER_ERRORS, summary="Infer"
)
async def infer(registry: Registry, state: State, name: ModelPath, body: InferRequest) -> InferResponse:
    return await _infer(registry.find(name), body, state.settings.max_images)


@protected.post(
    "/models/{name}/versions/{version}/infer",
    response_model=InferResponse,
    responses=_INFER_ERRORS,
    summary="Infer with a model version",
)
async def infer_version(
    registry: Registry, state: State, name: ModelPath, version: VersionPath, body: InferRequest
) -> InferResponse:
    return await _infer(registry.find(name, version), body, state.settings.max_images)


def _input_batch(model: LoadedModel, body: InferRequest, max_images: int) -> np.ndarray:
    spec = model.metadata.input
    tensor = body.inputs[0]
    expected = [spec.height, spec.width, spec.channels]
    if tensor.name != spec.name:
        raise InvalidParameterError(f"input is named {spec.name!r}, not {tensor.name!r}")
    if len(tensor.shape) != 4 or tensor.shape[1:] != expected or not 1 <= tensor.shape[0] <= max_images:
        raise InvalidParameterError(
            f"input shape must be [N, {', '.join(map(str, expected))}] with 1 <= N <= {max_images}, "
            f"not {tensor.shape}"
        )
    if len(tensor.data) != int(np.prod(tensor.shape)):
        raise InvalidParameterError(f"{len(tensor.data)} values do not fill shape {tensor.shape}")
    return np.asarray(tensor.data, dtype=np.float32).reshape(tensor.shape)


async def _infer(model: LoadedModel, body: InferRequest, max_images: int) -> InferResponse:
    batch = _input_batch(model, body, max_images)
    tensor_of_role = model.metadata.outputs
    wanted = [out.name for out in body.outputs] if body.outputs else list(tensor_of_role.values())
    unknown = sorted(set(wanted) - set(tensor_of_role.values()))
    if unknown:
        raise InvalidParameterError(
            f"unknown outputs {unknown}; this model has {sorted(tensor_of_role.values())}"
        )
    try:
        results = await model.batcher.infer(list(batch))
    except QueueFullError as exc:
        raise OverloadedError(f"{model.key} is overloaded: {exc}", headers={"Retry-After": "1"}) from None
    role_of_tensor = {tensor: role for role, tensor in tensor_of_role.items()}
    outputs = []
    for tensor in wanted:
        stacked = np.stack([result.outputs[role_of_tensor[tensor]] for result in results])
        outputs.append(
            OutputTensor(
                name=tensor, shape=list(stacked.shape), datatype="FP32", data=stacked.ravel().tolist()
            )
        )
    return InferResponse(
        model_name=model.metadata.name, model_version=str(model.metadata.version), id=body.id, outputs=outputs
    )
