"""The gRPC server beside REST: same process, same event loop, same engine and keys. It starts once the app
has, reports through `grpc.health.v1` (the empty service for liveness, the protocol's service for
readiness), and on SIGTERM turns NOT_SERVING first, then lets calls in flight finish before the engine closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from service.core.engine import Engine
from service.grpc.auth import PROTOCOL_SERVICE, KeyCheck
from service.grpc.metrics import Metered
from service.grpc.protocol import inference_pb2 as pb
from service.grpc.servicer import InferenceServicer
from service.keys import ApiKeys
from service.settings import Settings

logger = logging.getLogger("vision.grpc")

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
# How often readiness follows the engine's (loading, loaded, a reload that left nothing to serve).
READINESS_POLL_SECONDS = 0.25


class GrpcServer:
    """The protocol's gRPC server on `host:port`, started, drained and stopped by the HTTP server's life."""

    def __init__(self, engine: Engine, settings: Settings, keys: ApiKeys, host: str) -> None:
        self.engine = engine
        self.settings = settings
        self.address = f"{host}:{settings.grpc_port}"
        self.draining = False
        self.keys = keys
        self.health: health.aio.HealthServicer | None = None
        self.server: grpc.aio.Server | None = None
        self._readiness: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Bind and serve; built here, since a gRPC aio server belongs to the loop it is made on. OSError when
        the port cannot be bound."""
        self.health = health.aio.HealthServicer()
        self.server = grpc.aio.server(
            # Metered first, so a call refused for its key is counted too.
            interceptors=[Metered(), KeyCheck(self.keys, self.settings.admin_key)],
            options=[
                # A message over the REST body limit is refused by gRPC itself, before it is parsed.
                ("grpc.max_receive_message_length", self.settings.max_upload_bytes),
                ("grpc.max_send_message_length", -1),
                # Every worker process binds the same port, as they share REST's.
                ("grpc.so_reuseport", 1),
            ],
        )
        servicer = InferenceServicer(
            self.engine,
            model_control=self.settings.admin_key is not None,
            draining=lambda: self.draining,
            request_timeout=self.settings.request_timeout_seconds,
        )
        self.server.add_generic_rpc_handlers((protocol_handlers(servicer),))
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        try:
            self.server.add_insecure_port(self.address)
        except RuntimeError:
            raise OSError(
                f"gRPC cannot listen on {self.address} (VISION_GRPC_PORT; 0 turns it off)"
            ) from None
        await self.server.start()
        await self.health.set("", SERVING)
        ready = self.engine.readiness().status == "ok"
        await self.health.set(PROTOCOL_SERVICE, SERVING if ready else NOT_SERVING)
        self._readiness = asyncio.create_task(self._follow_readiness(ready))
        logger.info("gRPC (Open Inference Protocol) on %s", self.address)

    def drain(self) -> None:
        """Tell health checks to go elsewhere; calls are still answered until `stop`."""
        self.draining = True

    async def stop(self, grace: float) -> None:
        self.draining = True
        if self.server is None or self.health is None:
            return
        if self._readiness is not None:
            self._readiness.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._readiness
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)

    async def _follow_readiness(self, serving: bool) -> None:
        while True:
            if self.draining:
                await self.health.enter_graceful_shutdown()
                return
            ready = self.engine.readiness().status == "ok"
            if ready != serving:
                await self.health.set(PROTOCOL_SERVICE, SERVING if ready else NOT_SERVING)
                serving = ready
            await asyncio.sleep(READINESS_POLL_SECONDS)


def protocol_handlers(servicer: InferenceServicer) -> grpc.GenericRpcHandler:
    """Every method of the proto's service, registered under the name clients call."""
    methods = {}
    for method in pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].methods:
        request, response = getattr(pb, method.input_type.name), getattr(pb, method.output_type.name)
        methods[method.name] = grpc.unary_unary_rpc_method_handler(
            getattr(servicer, method.name),
            request_deserializer=request.FromString,
            response_serializer=response.SerializeToString,
        )
    return grpc.method_handlers_generic_handler(PROTOCOL_SERVICE, methods)
