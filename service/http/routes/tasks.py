"""`POST /classify`, `/detect`, `/segment` and `/explain`: images in, answers out. Each route parses, calls
the engine and encodes its schema's document with orjson (a fifth of the cost of building the models and
dumping them)."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response

from service.api.options import ClassifyOptions, DetectOptions, ExplainOptions, SegmentOptions, TaskOptions
from service.api.schemas import ClassifyResponse, DetectResponse, ExplainResponse, SegmentResponse
from service.core.engine import ModelId
from service.core.errors import CannotExplainError, UnknownLabelError
from service.core.tasks.classify import CLASSIFY
from service.core.tasks.detect import DETECT
from service.core.tasks.explain import EXPLAIN, EXPLAIN_PICTURE
from service.core.tasks.segment import SEGMENT
from service.core.tasks.task import TaskSpec
from service.http.auth import check_api_key, require_api_key
from service.http.errors import BadRequestError, InvalidParameterError
from service.http.routes.dependencies import TASK_ERRORS, engine_of, error_responses, fast_query_route
from service.http.uploads import read_images

# `require_api_key` is declared for the OpenAPI document; the route class checks it, before the body is read.
router = APIRouter(
    dependencies=[Depends(require_api_key)],
    tags=["inference"],
    route_class=fast_query_route(require_api_key, check_api_key),
)

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
_MODEL_HEADERS = {
    "X-Model-Name": {"description": "The model that answered.", "schema": {"type": "string"}},
    "X-Model-Version": {"description": "Its version.", "schema": {"type": "integer"}},
}
_EXPLAIN_ERRORS = error_responses(*TASK_ERRORS, CannotExplainError, UnknownLabelError)
_PNG = {"image/png": {"schema": {"type": "string", "format": "binary"}}}


def _unfamiliar_header(json_route: str) -> dict[str, Any]:
    return {
        "X-Unfamiliar": {
            "description": f"`true` when the image is unlike the model's held-out images (`unfamiliar` in "
            f"{json_route}); absent when the model file carries no reference.",
            "schema": {"type": "boolean"},
        }
    }


_PNG_ANSWER = {
    "description": "The trimap PNG: values 1 pet, 2 background, 3 border (`mask`), or coloured.",
    "content": _PNG,
    "headers": {**_MODEL_HEADERS, **_unfamiliar_header("/segment/json")},
}
_HEAT_ANSWER = {
    "description": "The photo with the class's heat laid over it (dark violet cold, yellow hot), at the "
    "image's size up to 1024 pixels on its longer side.",
    "content": _PNG,
    "headers": {
        **_MODEL_HEADERS,
        **_unfamiliar_header("/explain/json"),
        "X-Class": {"description": "The label explained.", "schema": {"type": "string"}},
        "X-Score": {"description": "That class's probability.", "schema": {"type": "number"}},
    },
}


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
    answer = await engine.run(CLASSIFY, images, options, images.names)
    return Response(orjson.dumps(ClassifyResponse.document(answer)), media_type=JSON)


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
    answer = await engine.run(DETECT, images, options, images.names)
    return Response(orjson.dumps(DetectResponse.document(answer)), media_type=JSON)


@router.post(
    "/segment",
    response_class=Response,
    responses={**_ERRORS, 200: _PNG_ANSWER},
    openapi_extra=_IMAGE_BODY,
    summary="Segment one image into a pet / background / border trimap PNG",
)
async def segment(request: Request, options: Annotated[SegmentOptions, Query()]) -> Response:
    """A trimap PNG the size of the input image. For a batch, or the class fractions, use `/segment/json`."""
    if request.query_params.get("format", "png") != "png":
        # JSON answers come from /segment/json: say so rather than answer a PNG unasked.
        raise InvalidParameterError(
            "format: /segment answers a PNG; for JSON, POST the same request to /segment/json"
        )
    model, segmented = await _one_image(request, SEGMENT, options, "/segment/json")
    return _png(segmented.png, model, segmented.unfamiliar)


@router.post(
    "/segment/json",
    response_model=SegmentResponse,
    responses={
        **_ERRORS,
        200: {"description": "The trimaps and class fractions.", "headers": _MODEL_HEADERS},
    },
    openapi_extra=_IMAGE_BODY,
    summary="Segment images: class fractions and trimap PNGs as JSON",
)
async def segment_json(request: Request, options: Annotated[SegmentOptions, Query()]) -> Response:
    """Per image, in upload order: the fraction of pixels of each trimap class and the PNG, base64-encoded."""
    engine = engine_of(request)
    images = await read_images(request, engine.limits.max_images)
    answer = await engine.run(SEGMENT, images, options, images.names)
    body = orjson.dumps(SegmentResponse.document(answer, options.style))
    return Response(body, media_type=JSON, headers=_model_headers(answer.model))


@router.post(
    "/explain",
    response_class=Response,
    responses={**_EXPLAIN_ERRORS, 200: _HEAT_ANSWER},
    openapi_extra=_IMAGE_BODY,
    summary="Show where a classifier saw a class: its heat map over one image, as PNG",
)
async def explain(request: Request, options: Annotated[ExplainOptions, Query()]) -> Response:
    """The image with the class activation map of its top class (or `class`) laid over it. For a batch, or
    the map's values, use `/explain/json`. A model whose file has no heatmap output answers 422."""
    model, explained = await _one_image(request, EXPLAIN_PICTURE, options, "/explain/json")
    return _png(
        explained.png,
        model,
        explained.unfamiliar,
        {"X-Class": explained.label, "X-Score": str(explained.score)},
    )


@router.post(
    "/explain/json",
    response_model=ExplainResponse,
    responses={**_EXPLAIN_ERRORS, 200: {"description": "The heat grids.", "headers": _MODEL_HEADERS}},
    openapi_extra=_IMAGE_BODY,
    summary="Explain images: each one's class activation map as a grid of numbers",
)
async def explain_json(request: Request, options: Annotated[ExplainOptions, Query()]) -> Response:
    """Per image, in upload order: the class explained, its probability, and its heat grid (0..1)."""
    engine = engine_of(request)
    images = await read_images(request, engine.limits.max_images)
    answer = await engine.run(EXPLAIN, images, options, images.names)
    body = orjson.dumps(ExplainResponse.document(answer))
    return Response(body, media_type=JSON, headers=_model_headers(answer.model))


async def _one_image(
    request: Request, task: TaskSpec, options: TaskOptions, batch_route: str
) -> tuple[ModelId, Any]:
    """One upload through `task` for a PNG answer, which has room for one image and no image's error: more
    than one is refused (pointing to `batch_route`), and `partial` cannot apply."""
    engine = engine_of(request)
    images = await read_images(request, engine.limits.max_images)
    if len(images) > 1:
        raise BadRequestError(f"a PNG answer holds one image: send one, or POST the batch to {batch_route}")
    whole = options.model_copy(update={"partial": False}) if options.partial else options
    answer = await engine.run(task, images, whole, images.names)
    return answer.model, answer.images[0]


def _png(png: bytes, model: ModelId, unfamiliar: bool | None, more: dict[str, str] | None = None) -> Response:
    headers = _model_headers(model) | (more or {})
    if unfamiliar is not None:
        headers["X-Unfamiliar"] = "true" if unfamiliar else "false"
    return Response(png, media_type="image/png", headers=headers)


def _model_headers(model: ModelId) -> dict[str, str]:
    return {"X-Model-Name": model.name, "X-Model-Version": str(model.version)}
