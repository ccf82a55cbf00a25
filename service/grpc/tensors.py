"""ModelInfer's tensors: typed `contents` or `raw_input_contents` in, and out the way the request came."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from service.core.dataplane import DATATYPES, INPUT_DATATYPE, datatype_of, input_values
from service.core.engine import TensorAnswer
from service.core.errors import InvalidInputError
from service.grpc.protocol import inference_pb2 as pb

# The typed field of each datatype; FP16 has none, and travels raw.
CONTENTS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
}


@dataclass(frozen=True)
class TensorRequest:
    """A ModelInfer request decoded: its input arrays, the outputs to return, whether it sent raw bytes."""

    inputs: dict[str, np.ndarray]
    outputs: list[str] | None
    raw: bool


def decode(request: pb.ModelInferRequest, max_values: int) -> TensorRequest:
    """The request's arrays, each within `max_values` values. Copies up to a message's worth of numbers:
    call it off the event loop."""
    raw = len(request.raw_input_contents) > 0
    if raw and len(request.raw_input_contents) != len(request.inputs):
        raise InvalidInputError(
            f"{len(request.raw_input_contents)} raw_input_contents for {len(request.inputs)} inputs"
        )
    inputs: dict[str, np.ndarray] = {}
    for index, tensor in enumerate(request.inputs):
        if tensor.name in inputs:
            raise InvalidInputError(f"input {tensor.name!r} is given twice")
        shape = list(tensor.shape)
        count = input_values(tensor.name, tensor.datatype, shape, max_values)
        values = _raw(tensor, request.raw_input_contents[index], count) if raw else _typed(tensor, count)
        inputs[tensor.name] = values.reshape(shape)
    if not inputs:
        raise InvalidInputError("the request has no input")
    requested = [output.name for output in request.outputs] or None
    return TensorRequest(inputs, requested, raw)


def encode(answer: TensorAnswer, request: pb.ModelInferRequest, raw: bool) -> pb.ModelInferResponse:
    """The response: each output's shape and datatype, its values as raw bytes when the request sent raw."""
    response = pb.ModelInferResponse(
        model_name=answer.model.name, model_version=str(answer.model.version), id=request.id
    )
    # A response is raw for every output or for none.
    raw = raw or any(datatype_of(array) not in CONTENTS for array in answer.outputs.values())
    for name, array in answer.outputs.items():
        datatype = datatype_of(array)
        output = response.outputs.add(name=name, datatype=datatype, shape=array.shape)
        if raw:
            response.raw_output_contents.append(
                np.ascontiguousarray(array, dtype=DATATYPES[datatype]).tobytes()
            )
        else:
            getattr(output.contents, CONTENTS[datatype]).extend(array.ravel().tolist())
    return response


def _raw(tensor: pb.ModelInferRequest.InferInputTensor, data: bytes, count: int) -> np.ndarray:
    dtype = DATATYPES[INPUT_DATATYPE]
    if len(data) != count * dtype.itemsize:
        raise InvalidInputError(
            f"input {tensor.name!r}: {len(data)} raw bytes are not the {count * dtype.itemsize} bytes of "
            f"shape {list(tensor.shape)} in {tensor.datatype}"
        )
    return np.frombuffer(data, dtype=dtype).astype(np.float32)


def _typed(tensor: pb.ModelInferRequest.InferInputTensor, count: int) -> np.ndarray:
    values = tensor.contents.fp32_contents
    if len(values) != count:
        raise InvalidInputError(
            f"input {tensor.name!r}: {len(values)} fp32_contents do not fill shape {list(tensor.shape)}"
        )
    return np.fromiter(values, dtype=np.float32, count=count)
