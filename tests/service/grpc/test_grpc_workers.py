"""`--workers 2`: every serving process binds the gRPC port beside REST's; a scrape adds up their calls."""

from __future__ import annotations

import json

import grpc
from conftest import REPO_ROOT, ServerFactory
from oip_grpc import model_infer, raw_request
from ports import free_port
from scrape import sample_value

from service.settings import DEFAULT_MODELS

CALLS = 20


def test_grpc_serves_under_two_workers_and_a_scrape_counts_every_call(start_server: ServerFactory) -> None:
    server = start_server(
        REPO_ROOT / "models", default_models=json.dumps(DEFAULT_MODELS), workers=2, grpc_port=free_port()
    )
    request = raw_request("digits", [1, 32, 32, 1])
    answered = 0
    for _ in range(CALLS):
        # A channel per call: the kernel spreads new connections over the processes sharing the port.
        with grpc.insecure_channel(server.grpc) as channel:
            infer = model_infer(channel)
            answered += len(infer(request, timeout=30).raw_output_contents)
    assert answered == CALLS
    labels = {"protocol": "grpc", "route": "/inference.GRPCInferenceService/ModelInfer", "status": "OK"}
    assert sample_value(server.client.get("/metrics").text, "vision_requests_total", labels) == CALLS
