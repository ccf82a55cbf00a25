"""Errors over HTTP: the adapters' own failures, the one table of status codes, and the two bodies.

Every failure has a stable code. The table gives its status on the task routes and on `/v2`; the task
routes answer our envelope `{"error": {"code", "message", "detail"}}`, `/v2` the Open Inference Protocol's
`{"error": "<message>"}`, which tritonclient and KServe clients read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response

from service.core.errors import ServiceError
from service.observability.logs import is_logged, mark_logged

logger = logging.getLogger("vision.errors")

V2_PREFIX = "/v2"
REQUEST_ID_HEADER = "X-Request-ID"
# Where the gate leaves the request id in the ASGI scope, for answers built below it.
SCOPE_REQUEST_ID = "vision.request_id"


class HttpError(ServiceError):
    """A failure of the HTTP exchange itself, before the engine is called; may add response headers."""

    def __init__(self, message: str, *, detail: Any = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message, detail=detail)
        self.headers = headers or {}


class BadRequestError(HttpError):
    code = "bad_request"


class UnauthorizedError(HttpError):
    code = "unauthorized"


class ForbiddenError(HttpError):
    code = "forbidden"


class PayloadTooLargeError(HttpError):
    code = "payload_too_large"


class UnsupportedMediaTypeError(HttpError):
    code = "unsupported_media_type"


class InvalidParameterError(HttpError):
    code = "invalid_parameter"


class RequestTimeoutError(HttpError):
    """The body stalled or took too long to arrive."""

    code = "request_timeout"


class ShuttingDownError(HttpError):
    code = "shutting_down"


class DeadlineExceededError(HttpError):
    code = "deadline_exceeded"


class Status(NamedTuple):
    """The status of one error code on the task routes, and on `/v2`."""

    task: int
    v2: int


# The Open Inference Protocol answers a request it cannot use with 400; it has no 422.
STATUS: dict[str, Status] = {
    "bad_request": Status(400, 400),
    "empty_image": Status(400, 400),
    "corrupt_image": Status(400, 400),
    "bad_image": Status(400, 400),
    "invalid_input": Status(400, 400),
    "unauthorized": Status(401, 401),
    "forbidden": Status(403, 403),
    "not_found": Status(404, 404),
    "model_not_found": Status(404, 404),
    "load_failed": Status(400, 400),
    "method_not_allowed": Status(405, 405),
    "request_timeout": Status(408, 408),
    "payload_too_large": Status(413, 413),
    "headers_too_large": Status(431, 431),
    "too_many_images": Status(413, 413),
    "image_too_large": Status(413, 413),
    "unsupported_media_type": Status(415, 415),
    "unsupported_image": Status(415, 415),
    "invalid_parameter": Status(422, 400),
    "wrong_task": Status(422, 400),
    "cannot_explain": Status(422, 400),
    "unknown_label": Status(422, 400),
    "overloaded": Status(503, 503),
    "not_ready": Status(503, 503),
    "shutting_down": Status(503, 503),
    "deadline_exceeded": Status(504, 504),
    "internal_error": Status(500, 500),
    # nginx's status for a client that closed the connection before its answer: logged, never received.
    "client_closed_request": Status(499, 499),
}
# Starlette's own HTTP errors (unknown route, wrong method) by their status; others are `http_error`.
_CODE_OF_STATUS = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def status_of(code: str, *, v2: bool = False) -> int:
    status = STATUS[code]
    return status.v2 if v2 else status.task


def error_body(code: str, message: str, detail: Any = None) -> dict[str, Any]:
    """Our envelope, as the task routes answer it."""
    return {"error": {"code": code, "message": message, "detail": detail}}


def rendered_error(
    path: str, code: str, message: str, detail: Any = None, status: int | None = None
) -> tuple[int, dict[str, Any]]:
    """Status and body of an error on `path`: the OIP body under `/v2`, else our envelope. `status` is for
    errors that come with their own (Starlette's); every other status comes from the table."""
    if _is_v2(path):
        return status or status_of(code, v2=True), {"error": message}
    return status or status_of(code), error_body(code, message, detail)


def _is_v2(path: str) -> bool:
    return path == V2_PREFIX or path.startswith(V2_PREFIX + "/")


@dataclass(frozen=True)
class ErrorAnswer:
    """An error as it goes on the wire: status, JSON body and the headers it adds."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    def response(self) -> Response:
        return Response(
            self.body, status_code=self.status, headers=self.headers, media_type="application/json"
        )


def error_answer(
    path: str,
    code: str,
    message: str,
    detail: Any = None,
    headers: dict[str, str] | None = None,
    status: int | None = None,
) -> ErrorAnswer:
    status, document = rendered_error(path, code, message, detail, status)
    return ErrorAnswer(status, orjson.dumps(document, option=orjson.OPT_NON_STR_KEYS), headers or {})


def answer_for(exc: Exception, path: str, request_id: str | None, method: str = "") -> ErrorAnswer:
    """The answer to any exception raised while handling a request; an unexpected one is logged here with
    the request id, once, and answered 500 without its details."""
    if isinstance(exc, ServiceError):
        headers = dict(getattr(exc, "headers", {}))
        if exc.retry_after is not None:
            headers["Retry-After"] = str(exc.retry_after)
        return error_answer(path, exc.code, exc.message, exc.detail, headers)
    if isinstance(exc, RequestValidationError):
        return _invalid_request(path, exc)
    if isinstance(exc, StarletteHTTPException):
        code = _CODE_OF_STATUS.get(exc.status_code, "http_error")
        return error_answer(path, code, str(exc.detail), headers=exc.headers, status=exc.status_code)
    if isinstance(exc, ClientDisconnect):
        return error_answer(path, "client_closed_request", "the client closed the connection mid-request")
    if not is_logged(exc):
        logger.exception(
            "unhandled error on %s %s",
            method,
            path,
            exc_info=exc,
            extra={"fields": {"request_id": request_id}},
        )
        mark_logged(exc)
    headers = {REQUEST_ID_HEADER: request_id} if request_id else None
    message = "internal error; the request id in the logs has the details"
    return error_answer(path, "internal_error", message, headers=headers)


def _invalid_request(path: str, exc: RequestValidationError) -> ErrorAnswer:
    detail = [
        {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
        for err in exc.errors()
    ]
    first = detail[0] if detail else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(part) for part in first["loc"])
    # A body that is not JSON at all is malformed (400), not a parameter out of range.
    code = "bad_request" if first.get("type") == "json_invalid" else "invalid_parameter"
    return error_answer(path, code, f"{where}: {first['msg']}", detail)


async def _handle(request: Request, exc: Exception) -> Response:
    # The 500 handler runs outside the gate's error handling, so the request id comes from the scope.
    request_id = request.scope.get(SCOPE_REQUEST_ID)
    return answer_for(exc, request.url.path, request_id, request.method).response()


def install_error_handlers(app: FastAPI) -> None:
    for kind in (ServiceError, RequestValidationError, StarletteHTTPException, ClientDisconnect, Exception):
        app.add_exception_handler(kind, _handle)
