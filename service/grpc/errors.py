"""Errors over gRPC: each code's status as Triton maps the same failure, with the message REST gives."""

from __future__ import annotations

import grpc

from service.core.errors import ServiceError

STATUS: dict[str, grpc.StatusCode] = {
    "model_not_found": grpc.StatusCode.NOT_FOUND,
    "unauthorized": grpc.StatusCode.UNAUTHENTICATED,
    "forbidden": grpc.StatusCode.PERMISSION_DENIED,
    "overloaded": grpc.StatusCode.UNAVAILABLE,
    "not_ready": grpc.StatusCode.UNAVAILABLE,
    "shutting_down": grpc.StatusCode.UNAVAILABLE,
    "deadline_exceeded": grpc.StatusCode.DEADLINE_EXCEEDED,
    "internal_error": grpc.StatusCode.INTERNAL,
}


class DeadlineExceededError(ServiceError):
    """A call past VISION_REQUEST_TIMEOUT_SECONDS: the gRPC adapter's deadline, as the HTTP gate has one."""

    code = "deadline_exceeded"


def status_of(error: ServiceError) -> grpc.StatusCode:
    """Anything a caller sent that cannot be used (HTTP's 400, 413, 415 and 422) is INVALID_ARGUMENT."""
    return STATUS.get(error.code, grpc.StatusCode.INVALID_ARGUMENT)


async def abort(context: grpc.aio.ServicerContext, error: ServiceError) -> None:
    """End the call with `error`; one worth retrying says when, as REST's Retry-After and as the pushback
    gRPC's own retry policy reads."""
    if error.retry_after is not None:
        context.set_trailing_metadata(
            (
                ("retry-after", str(error.retry_after)),
                ("grpc-retry-pushback-ms", str(error.retry_after * 1000)),
            )
        )
    await context.abort(status_of(error), error.message)
