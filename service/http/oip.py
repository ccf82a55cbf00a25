"""The Open Inference Protocol's REST bodies: schemas, JSON tensors and Triton's binary tensor data extension.

An inference body is a JSON object, optionally followed by raw tensor bytes: `Inference-Header-Content-Length`
gives the JSON's length, and each input with `parameters.binary_data_size` takes that many bytes, in order.
Binary tensors are little-endian and row-major. An output goes back as binary when its request asks
`parameters.binary_data`, or the request asks `parameters.binary_data_output` for all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service.core.dataplane import (
    DATATYPES,
    EXTENSIONS,
    INPUT_DATATYPE,
    MAX_DIMENSION,
    MAX_DIMENSIONS,
    datatype_of,
    input_values,
)
from service.core.engine import TensorAnswer
from service.core.errors import InvalidInputError, excerpt
from service.http.examples import V2_INFER_REQUEST, V2_INFER_RESPONSE

HEADER_LENGTH = "Inference-Header-Content-Length"
NAME_MAX_LENGTH = 256
# JSON punctuation beyond one per value that a request's keys, names and parameters may use.
JSON_STRUCTURE_SLACK = 4096
S = TypeVar("S", bound=BaseModel)


class Schema(BaseModel):
    model_config = ConfigDict(frozen=True)


class V2Error(Schema):
    """How `/v2` answers every error, as the protocol and tritonclient expect."""

    error: str = Field(
        description="What went wrong, for people.",
        examples=["input 'image' must have shape [N, 32, 32, 1] with 1 <= N <= 16, not [1, 8, 8, 1]"],
    )


class RepositoryIndexRequest(Schema):
    """Triton's repository index request: `ready` lists only the versions that serve."""

    ready: bool = Field(default=False, description="Only the versions that serve.")


class RepositoryIndexEntry(Schema):
    """One model version in the repository: served (`READY`) or refused (`UNAVAILABLE`, with the reason)."""

    name: str = Field(examples=["digits"])
    version: str = Field(examples=["1"])
    state: str = Field(examples=["READY"])
    reason: str = Field(default="", examples=[""])


class ModelControlRequest(Schema):
    """A load or unload request; Triton's `parameters` are accepted and not used."""

    parameters: dict[str, Any] | None = None


class TensorMetadata(Schema):
    """A tensor's name, element type and shape (-1 for a variable dimension)."""

    name: str = Field(examples=["image"])
    datatype: str = Field(examples=["FP32"])
    shape: list[int] = Field(examples=[[-1, 32, 32, 1]])


class ServerMetadata(Schema):
    name: str = Field(examples=["vision-service"])
    version: str = Field(examples=["0.2.0"])
    extensions: list[str] = Field(default_factory=lambda: list(EXTENSIONS), examples=[list(EXTENSIONS)])


class ServerLive(Schema):
    live: bool


class ServerReady(Schema):
    ready: bool


class ModelReady(Schema):
    name: str = Field(examples=["digits"])
    ready: bool


class ModelMetadataV2(Schema):
    """A model's versions, platform and tensors."""

    name: str = Field(examples=["digits"])
    versions: list[str] = Field(examples=[["1"]])
    platform: str = Field(default="onnxruntime_onnx")
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


Parameters = dict[str, Any]


class RequestInput(Schema):
    """An input tensor: JSON `data` (flat or nested, row-major) or `parameters.binary_data_size` bytes."""

    name: str = Field(max_length=NAME_MAX_LENGTH, examples=["image"])
    shape: list[Annotated[int, Field(ge=0, le=MAX_DIMENSION)]] = Field(
        max_length=MAX_DIMENSIONS, examples=[[1, 32, 32, 1]]
    )
    datatype: str = Field(max_length=NAME_MAX_LENGTH, examples=["FP32"])
    parameters: Parameters | None = None
    data: list[Any] | None = Field(default=None, examples=[[0.0] * 8])


class RequestOutput(Schema):
    """An output to return; `parameters.binary_data` asks for it as binary."""

    name: str = Field(max_length=NAME_MAX_LENGTH, examples=["probabilities"])
    parameters: Parameters | None = None


class InferRequest(Schema):
    """An inference request; `parameters.binary_data_output` asks for every output as binary."""

    model_config = ConfigDict(json_schema_extra={"examples": [V2_INFER_REQUEST]})

    id: str | None = Field(default=None, max_length=256)
    parameters: Parameters | None = None
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = Field(
        default=None, description="Outputs to return; all if omitted."
    )


class ResponseOutput(Schema):
    name: str = Field(examples=["probabilities"])
    shape: list[int] = Field(examples=[[1, 10]])
    datatype: str = Field(examples=["FP32"])
    parameters: Parameters | None = Field(default=None, description="`binary_data_size` for a binary output.")
    data: list[float] | None = Field(default=None, description="Row-major values, unless sent as binary.")


class InferResponse(Schema):
    """An inference response; `id` echoes the request's when it had one."""

    model_config = ConfigDict(json_schema_extra={"examples": [V2_INFER_RESPONSE]})

    model_name: str = Field(examples=["digits"])
    model_version: str = Field(examples=["1"])
    id: str | None = None
    outputs: list[ResponseOutput]


@dataclass(frozen=True)
class TensorRequest:
    """An inference request decoded: its id, its input arrays, and which outputs to return how."""

    id: str | None
    inputs: dict[str, np.ndarray]
    outputs: list[str] | None
    binary_outputs: frozenset[str]
    binary_by_default: bool

    def binary(self, output: str) -> bool:
        return output in self.binary_outputs or (self.outputs is None and self.binary_by_default)


def parse_control(body: bytes, schema: type[S]) -> S:
    """A model-control body: JSON whatever its Content-Type (tritonclient sends none), empty for defaults."""
    if not body.strip():
        return schema()
    try:
        return schema.model_validate_json(body)
    except ValidationError as exc:
        raise InvalidInputError(f"malformed request body: {_first_error(exc)}") from None


def parse_request(body: bytes, header_length: str | None, *, max_values: int) -> TensorRequest:
    """Decode an inference body: the JSON object (all of it, or its declared length), then binary tensors
    of at most `max_values` values each. Blocking for up to a body's worth of JSON: call it off the loop."""
    header, binary = _split(body, header_length)
    _check_json_structure(header, max_values)
    try:
        request = InferRequest.model_validate_json(header)
    except ValidationError as exc:
        raise InvalidInputError(f"malformed inference request: {_first_error(exc)}") from None
    inputs: dict[str, np.ndarray] = {}
    offset = 0
    for tensor in request.inputs:
        if tensor.name in inputs:
            raise InvalidInputError(f"input {tensor.name!r} is given twice")
        inputs[tensor.name], offset = _input_array(tensor, binary, offset, max_values)
    if offset != len(binary):
        raise InvalidInputError(f"{len(binary) - offset} bytes of binary data are not claimed by any input")
    by_default = bool((request.parameters or {}).get("binary_data_output", False))
    requested = request.outputs
    return TensorRequest(
        id=request.id,
        inputs=inputs,
        outputs=None if requested is None else [output.name for output in requested],
        binary_outputs=frozenset(
            output.name
            for output in requested or []
            if (output.parameters or {}).get("binary_data", by_default)
        ),
        binary_by_default=by_default,
    )


def encode_response(answer: TensorAnswer, request: TensorRequest) -> tuple[bytes, dict[str, str]]:
    """The response body and its headers: JSON, followed by the binary outputs when any were asked for."""
    outputs: list[ResponseOutput] = []
    chunks: list[bytes] = []
    for name, array in answer.outputs.items():
        datatype = datatype_of(array)
        shape = list(array.shape)
        if request.binary(name):
            raw = np.ascontiguousarray(array, dtype=DATATYPES[datatype]).tobytes()
            chunks.append(raw)
            outputs.append(
                ResponseOutput(
                    name=name, shape=shape, datatype=datatype, parameters={"binary_data_size": len(raw)}
                )
            )
        else:
            outputs.append(
                ResponseOutput(name=name, shape=shape, datatype=datatype, data=array.ravel().tolist())
            )
    response = InferResponse(
        model_name=answer.model.name, model_version=str(answer.model.version), id=request.id, outputs=outputs
    )
    header = response.model_dump_json(exclude_none=True).encode()
    if not chunks:
        return header, {"Content-Type": "application/json"}
    headers = {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(len(header))}
    return b"".join([header, *chunks]), headers


def _split(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    if header_length is None:
        return body, b""
    try:
        length = int(header_length)
    except ValueError:
        raise InvalidInputError(
            f"{HEADER_LENGTH} must be an integer, not {excerpt(header_length)!r}"
        ) from None
    if not 0 < length <= len(body):
        raise InvalidInputError(f"{HEADER_LENGTH} is {length}, but the body has {len(body)} bytes")
    return body[:length], body[length:]


def _check_json_structure(header: bytes, max_values: int) -> None:
    """Refuse JSON with more separators or brackets than `max_values` numbers need, before it is parsed:
    18 MB of `[[0]]` took 6 s and 960 MiB to parse and convert."""
    limit = max_values + JSON_STRUCTURE_SLACK
    for token, what in ((b",", "values"), (b"[", "nested lists"), (b"{", "objects")):
        if header.count(token) > limit:
            raise InvalidInputError(
                f"the inference request holds more {what} than an input of at most {max_values} values needs"
            )


def _input_array(tensor: RequestInput, binary: bytes, offset: int, max_values: int) -> tuple[np.ndarray, int]:
    """The input's array, and where the next input's binary data starts."""
    count = input_values(tensor.name, tensor.datatype, tensor.shape, max_values)
    dtype = DATATYPES[INPUT_DATATYPE]
    size = (tensor.parameters or {}).get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or size != count * dtype.itemsize:
            raise InvalidInputError(
                f"input {tensor.name!r}: binary_data_size {size!r} is not the {count * dtype.itemsize} bytes "
                f"of shape {tensor.shape} in {tensor.datatype}"
            )
        if offset + size > len(binary):
            raise InvalidInputError(f"input {tensor.name!r}: the body ends before its {size} bytes")
        array = np.frombuffer(binary, dtype=dtype, count=count, offset=offset)
        return array.reshape(tensor.shape).astype(np.float32), offset + size
    if tensor.data is None:
        raise InvalidInputError(f"input {tensor.name!r} has neither data nor parameters.binary_data_size")
    try:
        array = np.asarray(tensor.data, dtype=np.float32)
    except (ValueError, TypeError):
        raise InvalidInputError(
            f"input {tensor.name!r}: data must be numbers, flat or nested evenly"
        ) from None
    if array.size != count:
        raise InvalidInputError(
            f"input {tensor.name!r}: {array.size} values do not fill shape {tensor.shape}"
        )
    return array.reshape(tensor.shape), offset


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return excerpt(f"{where}: {first['msg']}" if where else first["msg"], 256)
