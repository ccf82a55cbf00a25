"""Getting image bytes out of a request: a hard cap on the body, multipart or raw, never to disk."""

from __future__ import annotations

import json

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import (
    BadRequestError,
    PayloadTooLargeError,
    TooManyImagesError,
    UnsupportedMediaTypeError,
    error_body,
)

IMAGE_FIELD = "image"
RAW_MEDIA_TYPES = ("application/octet-stream",)


class BodyLimitMiddleware:
    """Refuse a body over `max_bytes`: at once by Content-Length, else as soon as it streams past."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await _send_too_large(send, self._message(declared))
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise PayloadTooLargeError(self._message(received), detail={"limit": self.max_bytes})
            return message

        await self.app(scope, limited_receive, send)

    def _message(self, size: int) -> str:
        return f"request body of {size} bytes is over the limit of {self.max_bytes} bytes"


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_too_large(send: Send, message: str) -> None:
    body = json.dumps(error_body("payload_too_large", message)).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send(
        {"type": "http.response.start", "status": 413, "headers": [*headers, (b"connection", b"close")]}
    )
    await send({"type": "http.response.body", "body": body})


class _InMemoryMultiPartParser(MultiPartParser):
    # The body is already capped, so parts stay in memory: no upload ever touches the file system.
    spool_max_size = 2**62


async def read_images(request: Request, max_images: int) -> list[bytes]:
    """The uploaded images in order: every `image` field of a multipart form, or one raw image body."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type == "multipart/form-data":
        images = await _read_multipart(request, max_images)
    elif media_type.startswith("image/") or media_type in RAW_MEDIA_TYPES:
        images = [await request.body()]
    else:
        raise UnsupportedMediaTypeError(
            f"send images as multipart/form-data (field {IMAGE_FIELD!r}) or as a raw body with an image "
            f"Content-Type, not {media_type or 'no Content-Type'!r}"
        )
    if not images:
        raise BadRequestError(f"no image in the request: upload one in the form field {IMAGE_FIELD!r}")
    if len(images) > max_images:
        raise TooManyImagesError(f"{len(images)} images in one request; the limit is {max_images}")
    return images


async def _read_multipart(request: Request, max_images: int) -> list[bytes]:
    parser = _InMemoryMultiPartParser(request.headers, request.stream(), max_files=max_images, max_fields=32)
    try:
        form = await parser.parse()
    except MultiPartException as exc:
        if exc.message.startswith("Too many files"):
            raise TooManyImagesError(f"more than {max_images} images in one request") from None
        raise BadRequestError(f"malformed multipart body: {exc.message}") from None
    try:
        images: list[bytes] = []
        for field, value in form.multi_items():
            if not isinstance(value, UploadFile):
                continue
            if field != IMAGE_FIELD:
                raise BadRequestError(f"unexpected file field {field!r}: upload images as {IMAGE_FIELD!r}")
            images.append(await value.read())
        return images
    finally:
        await form.close()
