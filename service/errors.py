"""The JSON error envelope and the exception handlers that make every failure speak it."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.imaging import ImageError
from service.observability import REQUEST_ID_HEADER, mark_logged, request_id_of

logger = logging.getLogger("vision.errors")


class ServiceError(Exception):
    """A failure with a status and a stable machine-readable code, answered as the error envelope."""

    status = 500
    code = "internal_error"

    def __init__(self, message: str, *, detail: Any = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail
        self.headers = headers or {}


class BadRequestError(ServiceError):
    status, code = 400, "bad_request"


class UnauthorizedError(ServiceError):
    status, code = 401, "unauthorized"


class ForbiddenError(ServiceError):
    status, code = 403, "forbidden"


class ModelNotFoundError(ServiceError):
    status, code = 404, "model_not_found"


class PayloadTooLargeError(ServiceError):
    status, code = 413, "payload_too_large"


class TooManyImagesError(ServiceError):
    status, code = 413, "too_many_images"


class UnsupportedMediaTypeError(ServiceError):
    status, code = 415, "unsupported_media_type"


class InvalidParameterError(ServiceError):
    status, code = 422, "invalid_parameter"


class WrongTaskError(ServiceError):
    status, code = 422, "wrong_task"


class OverloadedError(ServiceError):
    status, code = 503, "overloaded"


class NotReadyError(ServiceError):
    status, code = 503, "not_ready"


def error_body(code: str, message: str, detail: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "detail": detail}}


def error_response(status: int, code: str, message: str, detail: Any = None, headers=None) -> JSONResponse:
    return JSONResponse(error_body(code, message, detail), status_code=status, headers=headers)


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


async def _service_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    return error_response(exc.status, exc.code, exc.message, exc.detail, exc.headers)


async def _image_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ImageError)
    return error_response(exc.status, exc.code, str(exc))


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    detail = [
        {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
        for err in exc.errors()
    ]
    first = detail[0] if detail else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(part) for part in first["loc"])
    return error_response(422, "invalid_parameter", f"{where}: {first['msg']}", detail)


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None))


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    # Starlette answers this one outside the observability middleware, so the id is added here.
    request_id = request_id_of(request.scope)
    logger.exception(
        "unhandled error on %s %s",
        request.method,
        request.url.path,
        exc_info=exc,
        extra={"fields": {"request_id": request_id}},
    )
    mark_logged(exc)
    headers = {REQUEST_ID_HEADER: request_id} if request_id else None
    message = "internal error; the request id in the logs has the details"
    return error_response(500, "internal_error", message, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(ImageError, _image_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
