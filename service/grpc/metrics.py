"""Every gRPC call counted and timed in the same Prometheus metrics as REST's, with `protocol="grpc"`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from service.observability import metrics


class Metered(grpc.aio.ServerInterceptor):
    """Wraps each method so its answer, or the status it ended with, is recorded as it finishes."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return handler
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _metered(handler.unary_unary, details.method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary is not None:  # a call refused for its key, its message never read
            return grpc.stream_unary_rpc_method_handler(
                _metered(handler.stream_unary, details.method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler


def _metered(
    behaviour: Callable[[Any, Any], Awaitable[Any]], route: str
) -> Callable[[Any, Any], Awaitable[Any]]:
    async def metered(request: Any, context: grpc.aio.ServicerContext) -> Any:
        started = time.perf_counter()
        status = "UNKNOWN"
        answering = behaviour(request, context)
        # This frame outlives the call inside an abort's traceback, which grpc keeps in a reference cycle:
        # holding the message, it held 16 MiB a refused call until a full collection (137 to 1,058 MiB
        # after 50 such calls; 243 MiB without the reference).
        del request
        try:
            answer = await answering
            status = "OK"
            return answer
        except grpc.aio.AbortError:
            status = (context.code() or grpc.StatusCode.UNKNOWN).name
            raise
        except asyncio.CancelledError:
            status = grpc.StatusCode.CANCELLED.name  # the client went away, or its deadline passed
            raise
        finally:
            metrics.record_request("grpc", route, "POST", status, time.perf_counter() - started, {}, None)

    return metered
