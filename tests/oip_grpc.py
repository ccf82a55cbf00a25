"""The service's gRPC port called as any gRPC client calls it, with Triton's own compiled messages
(tritonclient's), so the tests never use the service's copy of the protocol."""

from __future__ import annotations

from typing import Any

import numpy as np
from tritonclient.grpc import service_pb2

MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"


def model_infer(channel: Any) -> Any:
    """ModelInfer on a sync or aio channel: given a ModelInferRequest, it answers a ModelInferResponse."""
    return channel.unary_unary(
        MODEL_INFER,
        request_serializer=service_pb2.ModelInferRequest.SerializeToString,
        response_deserializer=service_pb2.ModelInferResponse.FromString,
    )


def raw_request(
    model: str, shape: list[int], value: float = 0.0, name: str = "image"
) -> service_pb2.ModelInferRequest:
    """One FP32 input of `shape`, every value `value`, as raw little-endian bytes."""
    tensor = service_pb2.ModelInferRequest.InferInputTensor(name=name, datatype="FP32", shape=shape)
    pixels = np.full(shape, value, "<f4").tobytes()
    return service_pb2.ModelInferRequest(model_name=model, inputs=[tensor], raw_input_contents=[pixels])
