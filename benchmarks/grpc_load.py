"""gRPC against REST at 16 clients on the same model, two ways. As a Python client team calls it:
tritonclient.grpc.aio with raw tensors against tritonclient.http.aio with binary tensors, in one Python
process. And each driven by a C load generator over the same bytes: h2load (Debian's nghttp2-client) for
gRPC, wrk for REST, for the model's input tensor (ModelInfer with raw contents against `/v2` with the binary
extension) and for a photo (ModelInfer with the JPEG as a BYTES input against `/classify`). h2load sees only
HTTP statuses, so every gRPC answer is checked through the service's own metrics."""

from __future__ import annotations

import asyncio
import json
import re
import resource
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import tritonclient.grpc.aio as triton_grpc
import tritonclient.http.aio as triton_http
from prometheus_client.parser import text_string_to_metric_families
from tritonclient.utils import InferenceServerException

from benchmarks import wrk
from benchmarks.servers import Server
from service.grpc.protocol import inference_pb2 as pb

PROTOCOL_PATH = "/inference.GRPCInferenceService/ModelInfer"
_FINISHED = re.compile(r"finished in [\d.]+m?s, ([\d.]+) req/s")
_SUCCEEDED = re.compile(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded")
_MEAN = re.compile(r"time for request:\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)")


def tensor_request(model: str, shape: list[int]) -> pb.ModelInferRequest:
    tensor = pb.ModelInferRequest.InferInputTensor(name="image", datatype="FP32", shape=shape)
    pixels = np.full(shape, 127.0, "<f4").tobytes()
    return pb.ModelInferRequest(model_name=model, inputs=[tensor], raw_input_contents=[pixels])


def image_request(model: str, jpeg: bytes) -> pb.ModelInferRequest:
    tensor = pb.ModelInferRequest.InferInputTensor(name="image", datatype="BYTES", shape=[1])
    return pb.ModelInferRequest(
        model_name=model, inputs=[tensor], raw_input_contents=[struct.pack("<I", len(jpeg)) + jpeg]
    )


def rest_tensor(shape: list[int]) -> wrk.Encoder:
    """The same tensor for `/v2/models/<name>/infer`, JSON header then raw bytes."""
    pixels = np.full(shape, 127.0, "<f4").tobytes()
    header = {
        "inputs": [
            {
                "name": "image",
                "shape": shape,
                "datatype": "FP32",
                "parameters": {"binary_data_size": len(pixels)},
            }
        ]
    }
    head = json.dumps(header).encode()
    headers = {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(head))}
    return lambda upload, index: (headers, head + pixels)


def executable() -> str:
    found = shutil.which("h2load")
    if found is None:
        raise RuntimeError("h2load is not installed: `make bench` installs Debian's nghttp2-client as root")
    return found


def grpc_calls(server: Server) -> dict[str, float]:
    """gRPC ModelInfer calls so far by status, as the service counts them."""
    text = httpx.get(f"http://127.0.0.1:{server.port}/metrics").text
    wanted = {"protocol": "grpc", "route": PROTOCOL_PATH}
    return {
        sample.labels["status"]: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "vision_requests_total" and wanted.items() <= sample.labels.items()
    }


def measure_grpc(
    server: Server, grpc_port: int, request: pb.ModelInferRequest, clients: int, seconds: float
) -> dict[str, Any]:
    """h2load with `clients` connections, one call at a time each, for `seconds` after a second of warm-up."""
    message = request.SerializeToString()
    with tempfile.TemporaryDirectory(prefix="h2load-") as folder:
        body = Path(folder) / "call.bin"
        body.write_bytes(b"\x00" + struct.pack(">I", len(message)) + message)
        command = [
            executable(),
            f"-c{clients}",
            "-m1",
            f"-D{max(1, round(seconds))}",
            "--warm-up-time=1",
            "-H",
            "content-type: application/grpc",
            "-H",
            "te: trailers",
            "-d",
            str(body),
            f"http://127.0.0.1:{grpc_port}{PROTOCOL_PATH}",
        ]
        calls_before, cpu_before = grpc_calls(server), server.cpu()
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        cpu, calls_after = server.cpu() - cpu_before, grpc_calls(server)
    counted = {status: calls_after[status] - calls_before.get(status, 0.0) for status in calls_after}
    finished, succeeded, mean = (
        _FINISHED.search(done.stdout),
        _SUCCEEDED.search(done.stdout),
        _MEAN.search(done.stdout),
    )
    if not (finished and succeeded and mean):
        raise ValueError(f"h2load printed no results:\n{done.stdout[-2000:]}")
    answered = int(succeeded.group(2))
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[mean.group(2)]
    return {
        "throughput": float(finished.group(1)),
        "answered": answered,
        # What the service itself answered other than OK, warm-up included: h2load sees only HTTP 200. The
        # calls still in flight when h2load stops are CANCELLED, by the client: not the service's failures.
        "grpc_failed": int(sum(n for status, n in counted.items() if status not in ("OK", "CANCELLED"))),
        "mean_ms": float(mean.group(1)) * scale,
        "server_cpu_ms_per_request": 1000 * cpu / answered if answered else None,
    }


def measure_rest(
    server: Server, target: wrk.Target, upload: bytes, clients: int, seconds: float
) -> dict[str, Any]:
    level = wrk.measure(target, [upload], concurrency=clients, duration=seconds, server_cpu=server.cpu)
    return {
        "throughput": level.throughput,
        "answered": level.ok,
        "errors": level.errors(),
        "p50_ms": level.latency_ms.get(50),
        "server_cpu_ms_per_request": 1000 * level.server_cpu_seconds / level.ok if level.ok else None,
    }


def measure_tritonclient(
    server: Server, address: str, protocol: str, model: str, shape: list[int], clients: int, seconds: float
) -> dict[str, Any]:
    """`clients` tritonclient aio calls in flight at once for `seconds`, after a second of warm-up: `grpc`
    with raw tensors, or `http` with binary tensors (tritonclient's own defaults)."""
    module = triton_grpc if protocol == "grpc" else triton_http
    pixels = np.full(shape, 127.0, np.float32)

    async def load() -> tuple[int, int, float]:
        client = module.InferenceServerClient(address)
        loop = asyncio.get_running_loop()
        counts = {"answered": 0, "failed": 0}

        async def one_client(until: float, counted: bool) -> None:
            while loop.time() < until:
                tensor = module.InferInput("image", shape, "FP32")
                tensor.set_data_from_numpy(pixels)
                try:
                    await client.infer(model, [tensor])
                    outcome = "answered"
                except InferenceServerException:
                    outcome = "failed"
                if counted:
                    counts[outcome] += 1

        try:
            await asyncio.gather(*(one_client(loop.time() + 1, False) for _ in range(clients)))
            started = loop.time()
            await asyncio.gather(*(one_client(started + seconds, True) for _ in range(clients)))
            return counts["answered"], counts["failed"], loop.time() - started
        finally:
            await client.close()

    client_before, server_before = wrk.cpu_of(resource.getrusage(resource.RUSAGE_SELF)), server.cpu()
    answered, failed, wall = asyncio.run(load())
    client_cpu = wrk.cpu_of(resource.getrusage(resource.RUSAGE_SELF)) - client_before
    server_cpu = server.cpu() - server_before
    return {
        "throughput": answered / wall,
        "answered": answered,
        "failed": failed,
        "client_cpu_ms_per_request": 1000 * client_cpu / answered if answered else None,
        "server_cpu_ms_per_request": 1000 * server_cpu / answered if answered else None,
    }
