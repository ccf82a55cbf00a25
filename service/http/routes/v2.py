"""The Open Inference Protocol (KServe V2 / Triton) REST endpoints: health, metadata, tensor inference.

Errors answer `{"error": "<message>"}` (service.http.errors), and inference speaks Triton's binary tensor data
extension (service.http.oip), so tritonclient works unchanged.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response
from fastapi.responses import JSONResponse

from service import __version__
from service.api.terms import MODEL_NAME_PATTERN
from service.core import dataplane
from service.core.engine import Engine
from service.core.errors import InvalidInputError, ModelNotFoundError, NotReadyError, OverloadedError
from service.core.repository import LoadedModel
from service.http import oip
from service.http.auth import require_api_key
from service.http.errors import InvalidParameterError
from service.http.routes.dependencies import AUTH_ERRORS, BODY_ERRORS, EngineDep, engine_of, error_responses
from service.http.uploads import read_body

router = APIRouter(prefix="/v2", tags=["open inference protocol"])
protected = APIRouter(prefix="/v2", tags=["open inference protocol"], dependencies=[Depends(require_api_key)])

ModelPath = Annotated[str, Path(pattern=MODEL_NAME_PATTERN, description="Model name.")]
VersionPath = Annotated[int, Path(ge=1, description="Model version.")]
_ERRORS = error_responses(*AUTH_ERRORS, InvalidParameterError, ModelNotFoundError, NotReadyError, v2=True)
_INFER_ERRORS = error_responses(
    *AUTH_ERRORS,
    *BODY_ERRORS,
    InvalidInputError,
    InvalidParameterError,
    ModelNotFoundError,
    NotReadyError,
    OverloadedError,
    v2=True,
)
_INFER_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": (
            "An inference request as JSON (with or without a Content-Type). With Triton's binary tensor data "
            f"extension the JSON is followed by raw tensor bytes and `{oip.HEADER_LENGTH}` gives its length."
        ),
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/InferRequest"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    },
    # Read by service.http.oip from the raw headers, so FastAPI would not declare it on its own.
    "parameters": [
        {
            "name": oip.HEADER_LENGTH,
            "in": "header",
            "required": False,
            "description": (
                "With binary tensor data (an `application/octet-stream` body): the length in bytes of the "
                "JSON that starts the body; the tensors' bytes follow it."
            ),
            "schema": {"type": "integer", "minimum": 0},
        }
    ],
}


@router.get("", response_model=oip.ServerMetadata, summary="Server metadata")
async def server_metadata(request: Request) -> oip.ServerMetadata:
    extensions = dataplane.extensions(model_control=request.app.state.settings.admin_key is not None)
    return oip.ServerMetadata(name="vision-service", version=__version__, extensions=extensions)


@router.get("/health/live", response_model=oip.ServerLive, summary="Server live")
async def server_live() -> oip.ServerLive:
    return oip.ServerLive(live=True)


@router.get(
    "/health/ready",
    response_model=oip.ServerReady,
    responses={503: {"model": oip.ServerReady, "description": "Not ready."}},
    summary="Server ready",
)
async def server_ready(request: Request, engine: EngineDep) -> JSONResponse:
    ready = engine.readiness().status == "ok" and not request.app.lifecycle.draining
    return JSONResponse({"ready": ready}, status_code=200 if ready else 503)


@protected.get(
    "/models/{name}", response_model=oip.ModelMetadataV2, responses=_ERRORS, summary="Model metadata"
)
async def model_metadata(engine: EngineDep, name: ModelPath) -> oip.ModelMetadataV2:
    return _metadata(engine, engine.find(name))


@protected.get(
    "/models/{name}/versions/{version}",
    response_model=oip.ModelMetadataV2,
    responses=_ERRORS,
    summary="Model version metadata",
)
async def model_version_metadata(
    engine: EngineDep, name: ModelPath, version: VersionPath
) -> oip.ModelMetadataV2:
    return _metadata(engine, engine.find(name, version))


@protected.get(
    "/models/{name}/ready", response_model=oip.ModelReady, responses=_ERRORS, summary="Model ready"
)
async def model_ready(engine: EngineDep, name: ModelPath) -> oip.ModelReady:
    engine.find(name)
    return oip.ModelReady(name=name, ready=True)


@protected.get(
    "/models/{name}/versions/{version}/ready",
    response_model=oip.ModelReady,
    responses=_ERRORS,
    summary="Model version ready",
)
async def model_version_ready(engine: EngineDep, name: ModelPath, version: VersionPath) -> oip.ModelReady:
    engine.find(name, version)
    return oip.ModelReady(name=name, ready=True)


@protected.post(
    "/models/{name}/infer",
    response_model=oip.InferResponse,
    responses=_INFER_ERRORS,
    openapi_extra=_INFER_BODY,
    summary="Infer",
)
async def infer(request: Request, name: ModelPath) -> Response:
    return await _infer(request, name, None)


@protected.post(
    "/models/{name}/versions/{version}/infer",
    response_model=oip.InferResponse,
    responses=_INFER_ERRORS,
    openapi_extra=_INFER_BODY,
    summary="Infer with a model version",
)
async def infer_version(request: Request, name: ModelPath, version: VersionPath) -> Response:
    return await _infer(request, name, version)


async def _infer(request: Request, name: str, version: int | None) -> Response:
    engine = engine_of(request)
    spec = engine.find(name, version).metadata.input  # an unknown model is a 404 whatever the body holds
    max_values = engine.limits.max_images * spec.height * spec.width * spec.channels
    body = await read_body(request)
    # Off the loop: a body's worth of JSON takes milliseconds to seconds to parse, and every other request
    # (liveness probes included) would wait for it.
    header_length = request.headers.get(oip.HEADER_LENGTH)
    tensors = await asyncio.to_thread(oip.parse_request, body, header_length, max_values=max_values)
    answer = await engine.infer_tensors(name, version, tensors.inputs, tensors.outputs)
    body, headers = oip.encode_response(answer, tensors)
    return Response(body, headers=headers)


def _metadata(engine: Engine, model: LoadedModel) -> oip.ModelMetadataV2:
    tensors = dataplane.model_tensors(engine, model)
    return oip.ModelMetadataV2(
        name=tensors.name,
        versions=tensors.versions,
        inputs=[oip.TensorMetadata(name=t.name, datatype=t.datatype, shape=t.shape) for t in tensors.inputs],
        outputs=[
            oip.TensorMetadata(name=t.name, datatype=t.datatype, shape=t.shape) for t in tensors.outputs
        ],
    )


def _tensor(spec: dataplane.TensorSpec) -> oip.TensorMetadata:
    return oip.TensorMetadata(name=spec.name, datatype=spec.datatype, shape=spec.shape)
