"""SIGTERM under gRPC load: health turns NOT_SERVING first, the clients move away, and no call fails."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import grpc
from conftest import ServerFactory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from oip_grpc import model_infer, raw_request
from ports import free_port
from tritonclient.grpc import service_pb2

CLIENTS = 16
METADATA = "/inference.GRPCInferenceService/ModelMetadata"


def test_sigterm_under_grpc_load_fails_no_call(start_server: ServerFactory, test_models_dir: Path) -> None:
    server = start_server(test_models_dir, drain_seconds=2, shutdown_seconds=10, grpc_port=free_port())

    async def terminate_while_loaded() -> tuple[dict[str, int], float, float, float]:
        async with grpc.aio.insecure_channel(server.grpc) as channel:
            metadata = await channel.unary_unary(
                METADATA,
                request_serializer=service_pb2.ModelMetadataRequest.SerializeToString,
                response_deserializer=service_pb2.ModelMetadataResponse.FromString,
            )(service_pb2.ModelMetadataRequest(name="colours"))
            (spec,) = metadata.inputs
            shape = [1, *spec.shape[1:]]
            request = raw_request("colours", shape, value=200.0, name=spec.name)
            infer = model_infer(channel)
            check = health_pb2_grpc.HealthStub(channel).Check
            outcomes: dict[str, int] = {}
            moved_away = asyncio.Event()

            async def client() -> None:
                while not moved_away.is_set():
                    try:
                        answer = await infer(request, timeout=10)
                        key = "ok" if answer.outputs else "empty"
                    except grpc.aio.AioRpcError as error:
                        key = error.code().name
                    outcomes[key] = outcomes.get(key, 0) + 1

            ready = health_pb2.HealthCheckRequest(service="inference.GRPCInferenceService")

            async def serving() -> bool:
                return (await check(ready, timeout=5)).status == health_pb2.HealthCheckResponse.SERVING

            async def balancer_probe() -> float:
                while await serving():
                    await asyncio.sleep(0.1)
                seen = time.monotonic()
                await asyncio.sleep(0.5)
                moved_away.set()
                return seen

            # Readiness follows the engine's every 0.25 s: wait for it as a balancer would.
            while not await serving():
                await asyncio.sleep(0.05)
            clients = [asyncio.create_task(client()) for _ in range(CLIENTS)]
            probe = asyncio.create_task(balancer_probe())
            await asyncio.sleep(1.0)
            server.process.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            draining_seen = await probe
            await asyncio.gather(*clients)
        while server.process.poll() is None:
            await asyncio.sleep(0.05)
        return outcomes, signalled, draining_seen, time.monotonic()

    outcomes, signalled, draining_seen, exited = asyncio.run(terminate_while_loaded())
    print(
        f"SIGTERM under gRPC load: {outcomes}; NOT_SERVING {draining_seen - signalled:.2f} s after the "
        "signal, "
        f"exit after {exited - signalled:.1f} s"
    )
    assert set(outcomes) == {"ok"}
    # NOT_SERVING during the drain, while calls were still answered; how soon is printed, not asserted.
    assert signalled < draining_seen < exited
    assert 2 <= exited - signalled < 2 + 10
    assert "Traceback" not in server.logs()
