"""Every gRPC call counted and timed in the same Prometheus metrics as REST's, with `protocol="grpc"`."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from service.observability import metrics


class Metered(grpc.aio.ServerInterceptor):
    """Wraps each unary method so its answer, or the status it ended with, is recorded as it finishes."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None or handler.unary_unary is None:
            return handler
        behaviour = handler.unary_unary

        async def metered(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            status = "UNKNOWN"
            try:
                answer = await behaviour(request, context)
                status = "OK"
                return answer
            except grpc.aio.AbortError:
                status = (context.code() or grpc.StatusCode.UNKNOWN).name
                raise
            finally:
                seconds = time.perf_counter() - started
                metrics.record_request("grpc", details.method, "POST", status, seconds, {}, None)

        return grpc.unary_unary_rpc_method_handler(
            metered,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
