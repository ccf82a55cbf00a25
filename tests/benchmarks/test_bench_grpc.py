"""benchmarks/grpc_load.py drives a live server's gRPC port with h2load, and counts a call that failed even
though h2load saw HTTP 200: the gRPC status travels in the trailers."""

from __future__ import annotations

import json

import httpx
import pytest
from conftest import REPO_ROOT
from ports import free_port

from benchmarks import grpc_load, runner


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory):
    results = tmp_path_factory.mktemp("bench") / "latest.json"
    opts, _ = runner.parse_args(["--results", str(results), "--port", str(free_port())])
    grpc_port = free_port()
    server = runner.start_service(opts, REPO_ROOT / "models", grpc_port=grpc_port)
    yield server, grpc_port
    server.stop()


def test_h2load_calls_are_answered_and_counted(service) -> None:
    server, grpc_port = service
    measured = grpc_load.measure_grpc(
        server, grpc_port, grpc_load.tensor_request("digits", [1, 32, 32, 1]), clients=2, seconds=1
    )
    assert measured["answered"] > 0
    assert measured["grpc_failed"] == 0
    assert measured["throughput"] > 0


def test_a_call_the_service_refuses_is_counted_as_failed(service) -> None:
    server, grpc_port = service
    measured = grpc_load.measure_grpc(
        server, grpc_port, grpc_load.tensor_request("nope", [1, 32, 32, 1]), clients=2, seconds=1
    )
    assert measured["answered"] > 0  # HTTP 200 each time: h2load cannot tell
    assert measured["grpc_failed"] >= measured["answered"]


def test_the_rest_twin_of_the_tensor_is_the_same_request(service) -> None:
    server, _ = service
    headers, body = grpc_load.rest_tensor([1, 32, 32, 1])(b"", 0)
    header = json.loads(body[: int(headers["Inference-Header-Content-Length"])])
    assert header["inputs"][0]["parameters"]["binary_data_size"] == 32 * 32 * 4
    answered = httpx.post(
        f"http://127.0.0.1:{server.port}/v2/models/digits/infer", headers=headers, content=body
    )
    assert answered.json()["outputs"][0]["shape"] == [1, 10]


def test_tritonclient_load_over_both_protocols_is_answered(service) -> None:
    server, grpc_port = service
    for protocol, address in (("grpc", f"127.0.0.1:{grpc_port}"), ("http", f"127.0.0.1:{server.port}")):
        measured = grpc_load.measure_tritonclient(
            server, address, protocol, "digits", [1, 32, 32, 1], clients=2, seconds=1
        )
        assert measured["answered"] > 0, protocol
        assert measured["failed"] == 0, protocol
