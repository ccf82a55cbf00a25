"""Getting image bytes out of a request, multipart or raw, in memory and never to disk (the body's size and
time limits are service.http.limits, read by the gate)."""

from __future__ import annotations

import codecs
import re
from typing import TYPE_CHECKING

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MAX_BOUNDARY_LENGTH, MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from service.core.errors import TooManyImagesError, excerpt
from service.http.errors import BadRequestError, UnsupportedMediaTypeError

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

IMAGE_FIELD = "image"
RAW_MEDIA_TYPES = ("application/octet-stream",)
# Starlette's form limits, kept: text fields are ignored but still counted and capped.
MAX_FIELDS = 32
MAX_FIELD_BYTES = 1024 * 1024
MAX_FILENAME_CHARACTERS = 255
_HEADER_NAME = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# The header values clients send, matched whole; any other form goes to python-multipart's parser.
_PLAIN_CONTENT_TYPE = re.compile(rb'multipart/form-data; ?(boundary)=(?:"([^"\\]+)"|([^\s;"\\]+))', re.I)
_PLAIN_DISPOSITION = re.compile(rb'form-data; (name)="([^"\\]*)"(?:; (filename)="([^"\\]*)")?')


class Images(list[bytes]):
    """The uploaded images' bytes in upload order, and `names`: each one's file name, None for a raw body."""

    def __init__(self, data: list[bytes], names: list[str | None]) -> None:
        super().__init__(data)
        self.names = names


async def read_images(request: Request, max_images: int) -> Images:
    """The uploaded images in order: every `image` field of a multipart form, or one raw image body."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type == "multipart/form-data":
        images = await _read_multipart(request, max_images)
    elif media_type.startswith("image/") or media_type in RAW_MEDIA_TYPES:
        images = Images([await read_body(request)], [None])
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


async def read_body(request: Request) -> bytes:
    """The whole body, straight from the ASGI messages: Starlette's `body()` reads them through an async
    generator, which costs the event loop more than the read itself. The body can be read once."""
    chunks: list[bytes] = []
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _read_multipart(request: Request, max_images: int) -> Images:
    params = _options(request.headers["content-type"].encode("latin-1"), _PLAIN_CONTENT_TYPE)
    if b"boundary" not in params:
        raise BadRequestError("malformed multipart body: Missing boundary in multipart.")
    boundary = params[b"boundary"]
    if len(boundary) > MAX_BOUNDARY_LENGTH:
        raise BadRequestError(
            f"malformed multipart body: the boundary is {len(boundary)} characters, "
            f"over the limit of {MAX_BOUNDARY_LENGTH}"
        )
    parts = _FileParts(_charset(params.get(b"charset", b"utf-8")), max_images)
    _parse(await read_body(request), boundary, parts)
    for field, _, _ in parts.files:
        if field != IMAGE_FIELD:
            raise BadRequestError(f"unexpected file field {field!r}: upload images as {IMAGE_FIELD!r}")
    return Images([data for _, _, data in parts.files], [name for _, name, _ in parts.files])


def _parse(body: bytes, boundary: bytes, parts: _FileParts) -> None:
    body = _without_preamble(body, boundary)
    plain = _plain_parts(body, boundary)
    if plain is not None:
        for disposition, data in plain:
            parts.begin(disposition)
            parts.add_data(data)
            parts.end()
        return
    parser = MultipartParser(boundary, parts.callbacks())
    try:
        parser.write(body)
        parser.finalize()
    except FormParserError:
        raise BadRequestError("malformed multipart body: Invalid multipart data.") from None


def _without_preamble(body: bytes, boundary: bytes) -> bytes:
    """`body` from its first delimiter line on: RFC 2046 allows a preamble, which python-multipart refuses."""
    delimiter = b"--" + boundary
    if body.startswith(delimiter):
        return body
    start = body.find(b"\r\n" + delimiter)
    return body[start + 2 :] if start >= 0 else body


def _plain_parts(body: bytes, boundary: bytes) -> list[tuple[bytes, bytes]] | None:
    """Each part's Content-Disposition and data, when `body` has the plain shape that browsers, curl and
    HTTP libraries send; None for anything else, which python-multipart then parses (or refuses). Found with
    `bytes.find`, this is a few microseconds where python-multipart's state machine takes some fifty of the
    event loop's per upload."""
    dash = b"--" + boundary
    if not body.startswith(dash + b"\r\n"):
        return None
    delimiter = b"\r\n" + dash
    found: list[tuple[bytes, bytes]] = []
    start = len(dash) + 2
    while True:
        end = body.find(delimiter, start)
        head_end = body.find(b"\r\n\r\n", start, end)
        if end < 0 or head_end < 0:
            return None
        disposition = _disposition(body[start:head_end].split(b"\r\n"))
        if disposition is None:
            return None
        found.append((disposition, body[head_end + 4 : end]))
        start = end + len(delimiter)
        after = body[start : start + 2]
        if after == b"--":
            return found if body[start + 2 :] in (b"", b"\r\n") else None
        if after != b"\r\n":
            return None
        start += 2


def _disposition(lines: list[bytes]) -> bytes | None:
    """The Content-Disposition among a part's header lines (b"" if none), or None if a line is not a plain
    `Name: value` header."""
    disposition = b""
    for line in lines:
        name, colon, value = line.partition(b":")
        if not colon or not _HEADER_NAME.fullmatch(name):
            return None
        if name.lower() == b"content-disposition":
            disposition = value.strip()
    return disposition


class _FileParts:
    """Each file part as bytes, in order, under Starlette's form limits, from python-multipart's callbacks.

    Starlette's own form parser would add a spooled file and awaited copies per upload."""

    def __init__(self, charset: str, max_files: int) -> None:
        # (field, file name, bytes) of each file part.
        self.files: list[tuple[str, str, bytes]] = []
        self._charset = charset
        self._max_files = max_files
        self._file_count = 0
        self._field_count = 0
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""
        self._name = ""
        self._filename = ""
        self._chunks: list[bytes] | None = None
        self._field_bytes = 0

    def callbacks(self) -> MultipartCallbacks:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value_data,
            "on_header_end": self._header_end,
            "on_headers_finished": lambda: self.begin(self._disposition),
            "on_part_data": lambda data, start, end: self.add_data(data[start:end]),
            "on_part_end": self.end,
        }

    def begin(self, disposition: bytes) -> None:
        """A part's headers are read: check its name and count it as a file or a field."""
        options = _options(disposition, _PLAIN_DISPOSITION)
        if b"name" not in options:
            raise BadRequestError(
                'malformed multipart body: The Content-Disposition header field "name" must be provided.'
            )
        self._name = _decode(options[b"name"], self._charset)
        self._chunks = None
        self._field_bytes = 0
        if b"filename" in options:
            # Only ever echoed in an error's detail, never used as a path; cut short like any quoted input.
            self._filename = excerpt(_decode(options[b"filename"], self._charset), MAX_FILENAME_CHARACTERS)
            self._file_count += 1
            if self._file_count > self._max_files:
                raise TooManyImagesError(f"more than {self._max_files} images in one request")
            self._chunks = []
        else:
            self._field_count += 1
            if self._field_count > MAX_FIELDS:
                raise BadRequestError(
                    f"malformed multipart body: Too many fields. Maximum number of fields is {MAX_FIELDS}."
                )

    def add_data(self, data: bytes) -> None:
        if self._chunks is not None:
            self._chunks.append(data)
            return
        self._field_bytes += len(data)
        if self._field_bytes > MAX_FIELD_BYTES:
            raise BadRequestError(
                f"malformed multipart body: Part exceeded maximum size of {MAX_FIELD_BYTES // 1024}KB."
            )

    def end(self) -> None:
        if self._chunks is not None:
            self.files.append((self._name, self._filename, b"".join(self._chunks)))

    def _part_begin(self) -> None:
        self._disposition = b""

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = self._header_value = b""


def _options(value: bytes, plain: re.Pattern[bytes]) -> dict[bytes, bytes]:
    """A header's parameters: by `plain` when the value has that form (a tenth of the cost), else as
    python-multipart parses them."""
    match = plain.fullmatch(value)
    if match is None:
        return parse_options_header(value)[1]
    groups = [group for group in match.groups() if group is not None]
    return {name.lower(): value for name, value in zip(groups[::2], groups[1::2], strict=True)}


def _charset(declared: bytes | str) -> str:
    """The text codec a form declares for its field names; BadRequest for an unknown one, or for a codec
    that is not text (`base64`, `zlib`, `rot13`: Python's bytes-to-bytes codecs)."""
    name = declared.decode("latin-1") if isinstance(declared, bytes) else declared
    try:
        codec = codecs.lookup(name)
    except LookupError:
        codec = None
    if codec is None or not codec._is_text_encoding:
        raise BadRequestError(f"malformed multipart body: {excerpt(name)!r} is not a text charset")
    return codec.name


def _decode(raw: bytes, charset: str) -> str:
    """`raw` in `charset` (already resolved by `_charset` to a known codec); latin-1 if it does not fit."""
    try:
        return raw.decode(charset)
    except UnicodeDecodeError:
        return raw.decode("latin-1")
