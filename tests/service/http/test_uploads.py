"""Reading uploads: images in order, the plain shape read as python-multipart reads it and any other left
to it, and every limit holds."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from python_multipart.multipart import MultipartParser
from starlette.requests import Request

from service.core.errors import TooManyImagesError
from service.http.errors import BadRequestError
from service.http.uploads import MAX_FIELDS, _plain_parts, read_images

BOUNDARY = b"vision-test-7f3a"


def part(name: str | None, data: bytes, filename: str | None = "x.jpg", headers: bytes = b"") -> bytes:
    disposition = b"form-data"
    if name is not None:
        disposition += f'; name="{name}"'.encode()
    if filename is not None:
        disposition += f'; filename="{filename}"'.encode()
    return (
        b"--"
        + BOUNDARY
        + b"\r\nContent-Disposition: "
        + disposition
        + b"\r\n"
        + headers
        + b"\r\n"
        + data
        + b"\r\n"
    )


def form(*parts: bytes) -> bytes:
    return b"".join(parts) + b"--" + BOUNDARY + b"--\r\n"


def body_with(delimiter_line: bytes, data: bytes) -> bytes:
    """One file part after a delimiter line of our choosing."""
    head = b'Content-Disposition: form-data; name="image"; filename="x.jpg"\r\n\r\n'
    return delimiter_line + head + data + b"\r\n--" + BOUNDARY + b"--\r\n"


def request_with(body: bytes, content_type: str, chunk: int = 65536) -> Request:
    pieces = [body[i : i + chunk] for i in range(0, len(body), chunk)] or [b""]
    remaining = list(pieces)

    async def receive() -> dict:
        piece = remaining.pop(0)
        return {"type": "http.request", "body": piece, "more_body": bool(remaining)}

    scope = {"type": "http", "method": "POST", "path": "/", "query_string": b"", "headers": []}
    scope["headers"] = [(b"content-type", content_type.encode())]
    return Request(scope, receive)


def read(
    body: bytes, max_images: int = 4, content_type: str | None = None, chunk: int = 65536
) -> list[bytes]:
    content_type = content_type or f"multipart/form-data; boundary={BOUNDARY.decode()}"
    return asyncio.run(read_images(request_with(body, content_type, chunk), max_images))


def test_images_in_upload_order_text_fields_ignored() -> None:
    body = form(
        part("image", b"first"), part("note", b"hello", filename=None), part("image", b"second\r\n--x")
    )
    assert read(body) == [b"first", b"second\r\n--x"]


@pytest.mark.parametrize("chunk", [1, 7, 65536])
def test_padded_and_quoted_boundaries_read_the_same_whatever_the_chunking(chunk: int) -> None:
    # Padding after a delimiter is legal (RFC 2046); a quoted boundary parameter is too.
    padded_part = part("image", b"two").replace(b"--" + BOUNDARY + b"\r\n", b"--" + BOUNDARY + b" \t \r\n", 1)
    assert read(form(part("image", b"one"), padded_part), chunk=chunk) == [b"one", b"two"]
    quoted = f'multipart/form-data; boundary="{BOUNDARY.decode()}"'
    assert read(form(part("image", b"q")), content_type=quoted, chunk=chunk) == [b"q"]


@pytest.mark.parametrize("chunk", [1, 7, 65536])
def test_a_preamble_before_the_first_delimiter_is_ignored(chunk: int) -> None:
    # RFC 2046: text before the first delimiter line is a preamble, to be ignored; a boundary inside a
    # line of it is not a delimiter.
    preamble = b"This is a multi-part message in MIME format.\r\nnot --" + BOUNDARY + b" at a line start\r\n"
    body = preamble + form(part("image", b"one"), part("image", b"two"))
    assert read(body, chunk=chunk) == [b"one", b"two"]


def test_file_field_with_another_name_is_refused() -> None:
    with pytest.raises(BadRequestError, match="unexpected file field 'photo'"):
        read(form(part("photo", b"x")))


def test_too_many_files_refused_before_the_rest_is_read() -> None:
    with pytest.raises(TooManyImagesError, match="more than 2 images"):
        read(
            form(*(part("image", bytes([i])) for i in range(3)), b"--" + BOUNDARY + b"\r\nbroken"),
            max_images=2,
        )


def test_too_many_text_fields_refused() -> None:
    fields = [part(f"f{i}", b"v", filename=None) for i in range(MAX_FIELDS + 1)]
    with pytest.raises(BadRequestError, match="Too many fields"):
        read(form(*fields, part("image", b"x")))


def test_oversized_text_field_refused() -> None:
    with pytest.raises(BadRequestError, match="Part exceeded maximum size"):
        read(form(part("note", b"v" * (1024 * 1024 + 1), filename=None), part("image", b"x")))


@pytest.mark.parametrize(
    ("body", "content_type", "message"),
    [
        (form(part(None, b"x")), None, '"name" must be provided'),
        (b"not multipart at all", None, "Invalid multipart data"),
        (form(part("image", b"x")), "multipart/form-data", "Missing boundary"),
        (form(part("image", b"x", headers=b"Bad Header: 1\r\n")), None, "Invalid multipart data"),
        (part("image", b"never closed"), None, "no image in the request"),
    ],
)
def test_malformed_bodies_are_bad_requests(body: bytes, content_type: str | None, message: str) -> None:
    with pytest.raises(BadRequestError, match=message):
        read(body, content_type=content_type)


@pytest.mark.parametrize("charset", ["base64", "rot13", "hex", "zlib", "uu", "bz2", "no-such-charset"])
def test_a_charset_that_is_not_a_text_encoding_is_a_bad_request(charset: str) -> None:
    content_type = f"multipart/form-data; boundary={BOUNDARY.decode()}; charset={charset}"
    with pytest.raises(BadRequestError, match=f"{charset!r} is not a text charset"):
        read(form(part("image", b"x")), content_type=content_type)


def test_a_declared_text_charset_names_the_fields() -> None:
    content_type = f"multipart/form-data; boundary={BOUNDARY.decode()}; charset=latin-1"
    assert read(form(part("image", b"x")), content_type=content_type) == [b"x"]


@pytest.mark.parametrize("preamble", [b"", b"a preamble\r\n"])
def test_a_boundary_over_256_characters_is_a_bad_request(preamble: bytes) -> None:
    boundary = "b" * 257
    body = preamble + b"--" + boundary.encode() + b'\r\nContent-Disposition: form-data; name="image"\r\n\r\nx'
    with pytest.raises(BadRequestError, match="the boundary is 257 characters"):
        read(body, content_type=f"multipart/form-data; boundary={boundary}")


def python_multipart_files(body: bytes, boundary: bytes) -> list[tuple[bytes, bytes]]:
    """The oracle: each part's Content-Disposition and data as python-multipart alone reads them."""
    files: list[tuple[bytes, bytes]] = []
    headers: dict[bytes, bytes] = {}
    state = {"field": b"", "value": b"", "data": b""}

    def header_end() -> None:
        headers[state["field"].lower()] = state["value"]
        state["field"] = state["value"] = b""

    def part_end() -> None:
        files.append((headers.pop(b"content-disposition", b""), state["data"]))
        state["data"] = b""

    def append(key: str) -> Callable[[bytes, int, int], None]:
        return lambda data, start, end: state.__setitem__(key, state[key] + data[start:end])

    parser = MultipartParser(
        boundary,
        {
            "on_header_field": append("field"),
            "on_header_value": append("value"),
            "on_header_end": header_end,
            "on_part_data": append("data"),
            "on_part_end": part_end,
        },
    )
    parser.write(body)
    parser.finalize()
    return files


PLAIN_BODIES = {
    "one file": form(part("image", b"\xff\xd8jpeg bytes\r\n--not-the-boundary")),
    "files and fields": form(part("image", b"a"), part("note", b"text", filename=None), part("image", b"")),
    "a content type per part": form(part("image", b"png", headers=b"Content-Type: image/png\r\n")),
    "no final CRLF": form(part("image", b"x"))[:-2],
    "data of CRLFs and dashes": form(part("image", b"\r\n\r\n--\r\n-" + BOUNDARY)),
}


@pytest.mark.parametrize("body", PLAIN_BODIES.values(), ids=PLAIN_BODIES.keys())
def test_the_plain_shape_is_read_as_python_multipart_reads_it(body: bytes) -> None:
    assert _plain_parts(body, BOUNDARY) == python_multipart_files(body, BOUNDARY)


ODD_BODIES = {
    "padding after a delimiter": body_with(b"--" + BOUNDARY + b"  \r\n", b"x"),
    "a folded header": form(part("image", b"x", headers=b"X-Folded: a\r\n b\r\n")),
    "an epilogue": form(part("image", b"x")) + b"epilogue",
    "never closed": part("image", b"x"),
}


@pytest.mark.parametrize("body", ODD_BODIES.values(), ids=ODD_BODIES.keys())
def test_any_other_shape_is_left_to_python_multipart(body: bytes) -> None:
    assert _plain_parts(body, BOUNDARY) is None
