"""ModelInfer with encoded images: a BYTES input whose elements are image files, answered as the task route
answers them. The task's JSON document (what `/classify`, `/detect` or `/segment/json` returns) comes back as
one BYTES output, `answer`, of shape [1]. Request parameters are the task's options (`top_k`, `partial`, ...).
"""

from __future__ import annotations

import math
import struct
from typing import Any

import orjson
from pydantic import ValidationError

from service.api.options import ClassifyOptions, DetectOptions, SegmentOptions, TaskOptions
from service.api.schemas import ClassifyResponse, DetectResponse, SegmentResponse
from service.core.engine import Answer, Engine
from service.core.errors import InvalidInputError, TooManyImagesError
from service.core.repository import LoadedModel
from service.core.tasks.classify import CLASSIFY
from service.core.tasks.detect import DETECT
from service.core.tasks.segment import SEGMENT
from service.grpc.protocol import inference_pb2 as pb

IMAGES_DATATYPE = "BYTES"
ANSWER_OUTPUT = "answer"
_LENGTH = struct.Struct("<I")


def carries_images(request: pb.ModelInferRequest) -> bool:
    return any(tensor.datatype == IMAGES_DATATYPE for tensor in request.inputs)


async def infer_images(
    engine: Engine, model: LoadedModel, request: pb.ModelInferRequest, version: int | None
) -> pb.ModelInferResponse:
    """The request's images through the model's task, the task's JSON answer as the `answer` output."""
    images, raw = _images(request, engine.limits.max_images)
    task = model.metadata.task
    options = _options(task, request, version)
    answer: Answer[Any]
    if task == "classify":
        answer = await engine.run(CLASSIFY, images, options)
        document = ClassifyResponse.document(answer)
    elif task == "detect":
        answer = await engine.run(DETECT, images, options)
        document = DetectResponse.document(answer)
    else:
        answer = await engine.run(SEGMENT, images, options)
        document = SegmentResponse.document(answer, options.style)  # type: ignore[attr-defined]
    return _response(request, answer, orjson.dumps(document), raw)


def _images(request: pb.ModelInferRequest, max_images: int) -> tuple[list[bytes], bool]:
    """The encoded images: `bytes_contents`, or Triton's raw BYTES (each element a little-endian uint32
    length, then its bytes). A request of images holds that one input."""
    if len(request.inputs) != 1:
        raise InvalidInputError("a request of encoded images has one BYTES input, of shape [N]")
    tensor = request.inputs[0]
    count = math.prod(tensor.shape) if len(tensor.shape) <= 2 else -1
    if count < 1 or any(d < 0 for d in tensor.shape):
        raise InvalidInputError(
            f"input {tensor.name!r}: encoded images come as shape [N], not {list(tensor.shape)}"
        )
    if count > max_images:
        raise TooManyImagesError(f"{count} images in one request; the limit is {max_images}")
    raw = len(request.raw_input_contents) > 0
    images = _unpacked(request.raw_input_contents[0]) if raw else list(tensor.contents.bytes_contents)
    if len(images) != count:
        raise InvalidInputError(
            f"input {tensor.name!r}: {len(images)} images do not fill shape {list(tensor.shape)}"
        )
    return images, raw


def _unpacked(data: bytes) -> list[bytes]:
    elements, offset = [], 0
    while offset < len(data):
        if offset + _LENGTH.size > len(data):
            raise InvalidInputError("raw BYTES contents end inside an element's length")
        (length,) = _LENGTH.unpack_from(data, offset)
        offset += _LENGTH.size
        if offset + length > len(data):
            raise InvalidInputError("raw BYTES contents end inside an element")
        elements.append(data[offset : offset + length])
        offset += length
    return elements


_OPTIONS: dict[str, type[TaskOptions]] = {
    "classify": ClassifyOptions,
    "detect": DetectOptions,
    "segment": SegmentOptions,
}


def _options(task: str, request: pb.ModelInferRequest, version: int | None) -> TaskOptions:
    given = {
        name: getattr(value, value.WhichOneof("parameter_choice") or "string_param")
        for name, value in request.parameters.items()
    }
    try:
        return _OPTIONS[task].model_validate({**given, "model": request.model_name, "version": version})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise InvalidInputError(f"parameters.{where}: {first['msg']}") from None


def _response(
    request: pb.ModelInferRequest, answer: Answer[Any], document: bytes, raw: bool
) -> pb.ModelInferResponse:
    response = pb.ModelInferResponse(
        model_name=answer.model.name, model_version=str(answer.model.version), id=request.id
    )
    output = response.outputs.add(name=ANSWER_OUTPUT, datatype=IMAGES_DATATYPE, shape=[1])
    if raw:
        response.raw_output_contents.append(_LENGTH.pack(len(document)) + document)
    else:
        output.contents.bytes_contents.append(document)
    return response
