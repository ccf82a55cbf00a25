"""`--workers 2`: every serving process binds the gRPC port beside REST's; a scrape adds up their calls."""

from __future__ import annotations

import json

import grpc
import numpy as np
from conftest import REPO_ROOT, ServerFactory, free_port
from scrape import sample_value
from tritonclient.grpc import service_pb2

from service.settings import DEFAULT_MODELS

CALLS = 20


def test_grpc_serves_under_two_workers_and_a_scrape_counts_every_call(start_server: ServerFactory) -> None:
    server = start_server(
        REPO_ROOT / "models", default_models=json.dumps(DEFAULT_MODELS), workers=2, grpc_port=free_port()
    )
    tensor = service_pb2.ModelInferRequest.InferInputTensor(
        name="image", datatype="FP32", shape=[1, 32, 32, 1]
    )
    request = service_pb2.ModelInferRequest(
        model_name="digits", inputs=[tensor], raw_input_contents=[np.zeros((1, 32, 32, 1), "<f4").tobytes()]
    )
    answered = 0
    for _ in range(CALLS):
        # A channel per call: the kernel spreads new connections over the processes sharing the port.
        with grpc.insecure_channel(server.grpc) as channel:
            infer = channel.unary_unary(
                "/inference.GRPCInferenceService/ModelInfer",
                request_serializer=service_pb2.ModelInferRequest.SerializeToString,
                response_deserializer=service_pb2.ModelInferResponse.FromString,
            )
            answered += len(infer(request, timeout=30).raw_output_contents)
    assert answered == CALLS
    labels = {"protocol": "grpc", "route": "/inference.GRPCInferenceService/ModelInfer", "status": "OK"}
    assert sample_value(server.client.get("/metrics").text, "vision_requests_total", labels) == CALLS
