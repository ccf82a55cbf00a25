"""`POST /classify`, `/detect` and `/segment`: images in, answers out. Each route parses, calls the engine and
builds its schema."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import Field

from service.core.tasks.classify import ClassifyOptions
from service.core.tasks.detect import DetectOptions
from service.core.tasks.segment import SegmentOptions
from service.http.auth import require_api_key
from service.http.errors import BadRequestError
from service.http.routes.dependencies import TASK_ERRORS, engine_of, error_responses
from service.http.schemas import ClassifyResponse, DetectResponse, SegmentResponse
from service.http.uploads import read_images

router = APIRouter(dependencies=[Depends(require_api_key)], tags=["inference"])

JSON = "application/json"
_IMAGE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": (
            "Images: multipart field `image` (repeat it for a batch), or one raw image body sent as "
            "`application/octet-stream` or with its own `image/*` Content-Type."
        ),
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
            # `image/*` is accepted too, but declared it is a media range that client generators refuse.
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}
_ERRORS = error_responses(*TASK_ERRORS)


class SegmentQuery(SegmentOptions):
    """The segment options, and whether the answer is one PNG or JSON for a batch."""

    response_format: Literal["png", "json"] = Field(
        default="png",
        alias="format",
        description="`png`: one image's PNG; `json`: fractions + base64 PNGs, batches.",
    )


@router.post(
    "/classify",
    response_model=ClassifyResponse,
    responses=_ERRORS,
    openapi_extra=_IMAGE_BODY,
    summary="Classify images",
)
async def classify(request: Request, options: Annotated[ClassifyOptions, Query()]) -> Response:
    """Top-k classes with softmax probabilities for each uploaded image, in upload order."""
    engine = engine_of(request)
    images = await read_images(request, engine.limits.max_images)
    answer = await engine.classify(images, options)
    return Response(ClassifyResponse.of(answer).model_dump_json(), media_type=JSON)


@router.post(
    "/detect",
    response_model=DetectResponse,
    responses=_ERRORS,
    openapi_extra=_IMAGE_BODY,
    summary="Detect objects",
)
async def detect(request: Request, options: Annotated[DetectOptions, Query()]) -> Response:
    """Per image, detections best first: class, score, predicted IoU and a box in original pixels."""
    engine = engine_of(request)
    images = await read_images(request, engine.limits.max_images)
    answer = await engine.detect(images, options)
    return Response(DetectResponse.of(answer).model_dump_json(), media_type=JSON)


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
async def segment(request: Request, options: Annotated[SegmentQuery, Query()]) -> Response:
    """A trimap the size of the input image, as PNG or (with `format=json`, for batches) as JSON."""
    engine = engine_of(request)
    images = await read_images(request, engine.limits.max_images)
    if options.response_format == "png" and len(images) > 1:
        raise BadRequestError("a PNG answer holds one image: send one, or ask for format=json")
    answer = await engine.segment(images, options)
    headers = {"X-Model-Name": answer.model.name, "X-Model-Version": str(answer.model.version)}
    if options.response_format == "png":
        return Response(answer.images[0].png, media_type="image/png", headers=headers)
    body = SegmentResponse.of(answer, options.style).model_dump_json()
    return Response(body, media_type=JSON, headers=headers)
