"""A full queue over gRPC: UNAVAILABLE with REST's message and a hint of when to retry, in both the trailer
REST's Retry-After becomes and the pushback gRPC's own retry policy reads."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import grpc
import onnx_models
import pytest
from conftest import LiveServer, ServerFactory
from oip_grpc import model_infer, raw_request
from ports import free_port
from tritonclient.grpc import service_pb2

QUEUE = 4


@pytest.fixture(scope="module")
def slow_server(start_server: ServerFactory, tmp_path_factory: pytest.TempPathFactory) -> LiveServer:
    root = tmp_path_factory.mktemp("slow-models")
    # About a second a run, one image a run, one run at a time: a full batch stays queued for seconds.
    onnx_models.slow_classifier(root, iterations=30_000)
    return start_server(
        root,
        default_models='{"classify": "slow"}',
        queue_size=QUEUE,
        max_images=QUEUE,
        max_batch=1,
        inference_workers=1,
        grpc_port=free_port(),
    )


def request_of(images: int) -> service_pb2.ModelInferRequest:
    return raw_request("slow", [images, 8, 8, 3])


def test_a_call_that_does_not_fit_the_queue_is_unavailable_with_a_retry_hint(slow_server: LiveServer) -> None:
    async def fill_then_overflow() -> grpc.aio.AioRpcError:
        async with grpc.aio.insecure_channel(slow_server.grpc) as channel:
            infer = model_infer(channel)
            filling = asyncio.ensure_future(infer(request_of(QUEUE), timeout=60))
            await asyncio.sleep(0.3)
            with pytest.raises(grpc.aio.AioRpcError) as shed:
                await infer(request_of(2), timeout=60)
            filling.cancel()
            return shed.value

    shed = asyncio.run(fill_then_overflow())
    assert shed.code() == grpc.StatusCode.UNAVAILABLE
    # REST's message; 3 waiting once the first run has taken its image, 4 before.
    assert re.fullmatch(r"slow:1 is overloaded: [34] images already waiting \(limit 4\)", shed.details())
    trailers = dict(shed.trailing_metadata())
    assert trailers["retry-after"] == "1"
    assert trailers["grpc-retry-pushback-ms"] == "1000"


def test_a_call_past_the_request_timeout_is_deadline_exceeded_with_rest_s_message(
    start_server: ServerFactory, tmp_path: Path
) -> None:
    onnx_models.slow_classifier(tmp_path, iterations=30_000)
    server = start_server(
        tmp_path, default_models='{"classify": "slow"}', request_timeout_seconds=0.5, grpc_port=free_port()
    )
    with grpc.insecure_channel(server.grpc) as channel:
        infer = model_infer(channel)
        with pytest.raises(grpc.RpcError) as late:
            infer(request_of(1), timeout=60)
    assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert late.value.details() == "the request took longer than its deadline of 0.5 s"
