"""`POST /classify`, `/detect` and `/segment`: images in, answers out."""

from __future__ import annotations

import base64
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, Depends, Query, Request, Response

from service import observability, postprocess
from service.auth import require_api_key
from service.errors import (
    BadRequestError,
    InvalidParameterError,
    ModelNotFoundError,
    OverloadedError,
    WrongTaskError,
)
from service.imaging import ImageLimits
from service.pipeline import Inference, in_pool, run_images, timed, timed_stage
from service.registry import LoadedModel
from service.routes.dependencies import AUTH_ERRORS, UPLOAD_ERRORS, Registry, error_responses, state_of
from service.schemas import (
    Box,
    ClassifyResponse,
    ClassifyResult,
    Detection,
    DetectResponse,
    DetectResult,
    ImageSize,
    ModelRef,
    Prediction,
    SegmentResponse,
    SegmentResult,
)
from service.uploads import read_images

router = APIRouter(dependencies=[Depends(require_api_key)], tags=["inference"])

MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
ModelName = Annotated[
    str | None,
    Query(description="Model to use; the task's default model when omitted.", pattern=MODEL_NAME_PATTERN),
]
ModelVersion = Annotated[int | None, Query(ge=1, description="Model version; the highest when omitted.")]

_IMAGE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "Images: multipart field `image` (repeat it for a batch) or a raw image body.",
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {
                        "image": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "JPEG, PNG, WebP, BMP, GIF (first frame) or TIFF.",
                        }
                    },
                }
            },
            "image/*": {"schema": {"type": "string", "format": "binary"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}
_ERRORS = error_responses(
    *AUTH_ERRORS, *UPLOAD_ERRORS, ModelNotFoundError, InvalidParameterError, WrongTaskError, OverloadedError
)


async def _infer(request: Request, model: LoadedModel, *, keep_original: bool = False) -> Inference:
    # The state comes from the request rather than a `State` dependency: one less resolution per request.
    state = state_of(request)
    timings = observability.current_timings()
    if timings is not None:
        timings.model = model.key
    uploads = await read_images(request, state.settings.max_images)
    limits = ImageLimits(max_bytes=state.settings.max_upload_bytes, max_pixels=state.settings.max_pixels)
    return await run_images(
        model, uploads, limits=limits, decode_pool=state.decode_pool, keep_original=keep_original
    )


def _model_ref(model: LoadedModel) -> ModelRef:
    return ModelRef(name=model.metadata.name, version=model.metadata.version)


def _size(inference: Inference, index: int) -> ImageSize:
    geometry = inference.images[index].geometry
    return ImageSize(width=geometry.original_width, height=geometry.original_height)


@router.post(
    "/classify",
    response_model=ClassifyResponse,
    responses=_ERRORS,
    openapi_extra=_IMAGE_BODY,
    summary="Classify images",
)
async def classify(
    request: Request,
    registry: Registry,
    model: ModelName = None,
    version: ModelVersion = None,
    top_k: Annotated[int, Query(ge=1, le=1000, description="How many classes to return per image.")] = 5,
) -> ClassifyResponse:
    """Top-k classes with softmax probabilities for each uploaded image, in upload order."""
    chosen = registry.resolve("classify", model, version)
    inference = await _infer(request, chosen)
    labels = chosen.metadata.labels
    with timed("postprocess", chosen.key):
        results = [
            ClassifyResult(
                image=_size(inference, index),
                predictions=[
                    Prediction(label=label, class_id=class_id, probability=probability)
                    for class_id, label, probability in postprocess.top_k(
                        result.outputs["probabilities"], labels, top_k
                    )
                ],
            )
            for index, result in enumerate(inference.results)
        ]
    return ClassifyResponse(model=_model_ref(chosen), results=results)


@router.post(
    "/detect",
    response_model=DetectResponse,
    responses=_ERRORS,
    openapi_extra=_IMAGE_BODY,
    summary="Detect objects",
)
async def detect(
    request: Request,
    registry: Registry,
    model: ModelName = None,
    version: ModelVersion = None,
    score_threshold: Annotated[
        float, Query(ge=0, le=1, description="Drop detections whose score is below this.")
    ] = 0.25,
    iou_threshold: Annotated[
        float, Query(ge=0, le=1, description="Non-max suppression: overlap above which a weaker box goes.")
    ] = 0.45,
    max_detections: Annotated[int, Query(ge=1, le=1000, description="Most detections per image.")] = 100,
) -> DetectResponse:
    """Per image, detections best first: class, score, predicted IoU and a box in original pixels."""
    chosen = registry.resolve("detect", model, version)
    inference = await _infer(request, chosen)
    with timed("postprocess", chosen.key):
        results = [
            DetectResult(
                image=_size(inference, index),
                detections=[
                    _detection_schema(found)
                    for found in postprocess.detect(
                        result.outputs["boxes"],
                        result.outputs["iou"],
                        result.outputs["class_probabilities"],
                        chosen.metadata.labels,
                        inference.images[index].geometry,
                        score_threshold=score_threshold,
                        iou_threshold=iou_threshold,
                        max_detections=max_detections,
                    )
                ],
            )
            for index, result in enumerate(inference.results)
        ]
    return DetectResponse(model=_model_ref(chosen), results=results)


def _detection_schema(found: postprocess.Detection) -> Detection:
    x_min, y_min, x_max, y_max = found.box
    return Detection(
        label=found.label,
        class_id=found.class_id,
        score=found.score,
        iou=found.iou,
        box=Box(x_min=x_min, y_min=y_min, x_max=x_max, y_max=y_max),
    )


Style = Literal["mask", "color", "overlay"]


@router.post(
    "/segment",
    response_model=SegmentResponse,
    responses={
        **_ERRORS,
        200: {
            "description": "The trimap PNG (values 1 pet, 2 background, 3 border; or coloured), or JSON.",
            "content": {"image/png": {"schema": {"type": "string", "format": "binary"}}},
        },
    },
    openapi_extra=_IMAGE_BODY,
    summary="Segment images into a pet / background / border trimap",
)
async def segment(
    request: Request,
    registry: Registry,
    model: ModelName = None,
    version: ModelVersion = None,
    style: Annotated[
        Style, Query(description="`mask`: values 1..3; `color`: coloured; `overlay`: blended over the photo.")
    ] = "mask",
    response_format: Annotated[
        Literal["png", "json"],
        Query(
            alias="format", description="`png`: one image's PNG; `json`: fractions + base64 PNGs, batches."
        ),
    ] = "png",
) -> Response:
    """A trimap the size of the input image, as PNG or (with `format=json`, for batches) as JSON."""
    chosen = registry.resolve("segment", model, version)
    inference = await _infer(request, chosen, keep_original=style == "overlay")
    if response_format == "png" and len(inference.images) > 1:
        raise BadRequestError("a PNG answer holds one image: send one, or ask for format=json")
    labels = chosen.metadata.labels
    rendered = await timed_stage(
        "postprocess",
        chosen.key,
        in_pool(
            state_of(request).decode_pool,
            lambda: [_render(inference, index, style) for index in range(len(inference.images))],
        ),
    )
    model_headers = {"X-Model-Name": chosen.metadata.name, "X-Model-Version": str(chosen.metadata.version)}
    if response_format == "png":
        return Response(rendered[0][1], media_type="image/png", headers=model_headers)
    body = SegmentResponse(
        model=_model_ref(chosen),
        style=style,
        results=[
            SegmentResult(
                image=_size(inference, index),
                fractions=postprocess.class_fractions(mask, labels),
                png_base64=base64.b64encode(png).decode("ascii"),
            )
            for index, (mask, png) in enumerate(rendered)
        ],
    )
    return Response(body.model_dump_json(), media_type="application/json", headers=model_headers)


def _render(inference: Inference, index: int, style: Style) -> tuple[np.ndarray, bytes]:
    image = inference.images[index]
    mask = postprocess.trimap(inference.results[index].outputs["probabilities"], image.geometry)
    return mask, postprocess.render_trimap_png(mask, style, image.original)
