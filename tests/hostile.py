"""A corpus of hostile requests, one per kind, with the status and error code each must get.

Images are made here with Pillow or by hand (headers that lie, files cut short); nothing is downloaded.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

from conftest import encode, solid
from PIL import Image

BOUNDARY = "hostile-boundary"


@dataclass(frozen=True)
class Hostile:
    """One request the service must refuse: what it sends, and the status and code it must answer."""

    kind: str
    status: int
    code: str | None  # None under /v2, whose body is {"error": "<message>"}
    path: str = "/classify"
    method: str = "POST"
    body: bytes = b""
    content_type: str | None = "image/png"
    params: dict[str, Any] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


def photo(size: tuple[int, int] = (96, 64)) -> Image.Image:
    """Noise, so every format's payload is long enough to cut in the middle."""
    return Image.frombytes("RGB", size, bytes((x * 7919) % 251 for x in range(size[0] * size[1] * 3)))


def cut(data: bytes, keep: float = 0.6) -> bytes:
    return data[: int(len(data) * keep)]


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def png_declaring(width: int, height: int) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + png_chunk(b"IEND", b"")
    )


def with_size_field(data: bytes, offset: int, fmt: str, *values: int) -> bytes:
    """`data` with the integers at `offset` (struct format `fmt`) replaced: a header that lies."""
    return data[:offset] + struct.pack(fmt, *values) + data[offset + struct.calcsize(fmt) :]


def jpeg_segments(data: bytes) -> list[tuple[int, int, int]]:
    """Each segment of a JPEG as (marker, start, end), a scan running to the next marker."""
    found, position = [], 2
    while position < len(data):
        marker = data[position + 1]
        if marker == 0xD9:
            return [*found, (marker, position, position + 2)]
        end = position + 2 + int.from_bytes(data[position + 2 : position + 4], "big")
        if marker == 0xDA:
            while data[end] != 0xFF or data[end + 1] == 0 or 0xD0 <= data[end + 1] <= 0xD7:
                end += 1
        found.append((marker, position, end))
        position = end
    return found


def jpeg_with_repeated_scans(count: int, side: int = 2048) -> bytes:
    """A progressive JPEG whose last scan (an AC refinement of a flat `side` x `side` image, a few bytes)
    is repeated `count` times: libjpeg makes a pass over the whole image for each."""
    data = encode(Image.new("RGB", (side, side), (120, 130, 140)), "JPEG", progressive=True)
    segments = jpeg_segments(data)
    _, start, end = [segment for segment in segments if segment[0] == 0xDA][-1]
    eoi = segments[-1][1]
    return data[:eoi] + data[start:end] * count + data[eoi:]


def jpeg_with_exif_segments(count: int) -> bytes:
    """A small JPEG with `count` Exif APP1 segments, which Pillow joins one by one."""
    payload = b"Exif\x00\x00MM\x00*\x00\x00\x00\x08\x00\x00"
    segment = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    data = encode(solid((200, 10, 10)), "JPEG")
    return data[:2] + segment * count + data[2:]


def tiff_with_long_tag(tag: int, kind: int, count: int, value_bytes: int) -> bytes:
    """An 8x8 grey TIFF whose first directory also holds `tag` with `count` values of TIFF type `kind`."""
    tags = [(256, 3, 1, 8), (257, 3, 1, 8), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1), (278, 3, 1, 8)]
    pixels_at = 8 + 2 + 9 * 12 + 4
    tags += [(273, 4, 1, pixels_at), (279, 4, 1, 64), (tag, kind, count, pixels_at + 64)]
    directory = struct.pack("<H", len(tags)) + b"".join(
        struct.pack("<HHII", *entry) for entry in sorted(tags)
    )
    return b"II*\x00" + struct.pack("<I", 8) + directory + b"\0" * 4 + bytes(64) + bytes(count * value_bytes)


def multipart(*parts: bytes, boundary: str = BOUNDARY, end: bool = True) -> bytes:
    body = b"".join(b"--" + boundary.encode() + b"\r\n" + part + b"\r\n" for part in parts)
    return body + (b"--" + boundary.encode() + b"--\r\n" if end else b"")


def file_part(data: bytes, name: str = "image", filename: str = "x.png") -> bytes:
    return (
        f'Content-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode() + data


def field_part(name: str, value: bytes) -> bytes:
    return f'Content-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + value


def infer_body(**request: Any) -> bytes:
    tensor = {"name": "image", "shape": [1, 8, 8, 3], "datatype": "FP32", "data": [0.0] * 192}
    tensor.update(request.pop("tensor", {}))
    return json.dumps({"inputs": [tensor], **request}).encode()


def corpus(max_upload_bytes: int, max_images: int) -> list[Hostile]:
    """Every kind, for a server with these limits (and a `colours` classifier as the /v2 model)."""
    good = encode(photo(), "PNG")
    form = f"multipart/form-data; boundary={BOUNDARY}"
    v2 = "/v2/models/colours/infer"
    binary_header = json.dumps(
        {
            "inputs": [
                {
                    "name": "image",
                    "shape": [1, 8, 8, 3],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": 768},
                }
            ]
        }
    ).encode()
    return [
        # Bytes that are not an image, or not one we read
        Hostile("empty raw body", 400, "empty_image"),
        Hostile("text sent as PNG", 415, "unsupported_image", body=b"hello, I am not a picture"),
        Hostile("SVG", 415, "unsupported_image", body=b'<svg xmlns="http://www.w3.org/2000/svg"/>'),
        Hostile("PDF", 415, "unsupported_image", body=b"%PDF-1.7\n1 0 obj<<>>endobj\n%%EOF"),
        Hostile("HTML", 415, "unsupported_image", body=b"<!doctype html><script>alert(1)</script>"),
        Hostile("ZIP", 415, "unsupported_image", body=b"PK\x03\x04" + b"\0" * 60),
        Hostile("ICO (a format not served)", 415, "unsupported_image", body=encode(photo((32, 32)), "ICO")),
        Hostile("PSD signature", 415, "unsupported_image", body=b"8BPS\x00\x01" + b"\0" * 40),
        # Files cut short or damaged
        Hostile("truncated JPEG", 400, "corrupt_image", body=cut(encode(photo(), "JPEG"))),
        Hostile(
            "truncated progressive JPEG",
            400,
            "corrupt_image",
            body=cut(encode(photo(), "JPEG", progressive=True)),
        ),
        Hostile("truncated PNG", 400, "corrupt_image", body=cut(good)),
        Hostile("truncated GIF", 400, "corrupt_image", body=cut(encode(photo(), "GIF"))),
        Hostile("truncated WebP", 400, "corrupt_image", body=cut(encode(photo(), "WEBP", lossless=True))),
        Hostile("truncated BMP", 400, "corrupt_image", body=cut(encode(photo(), "BMP"))),
        Hostile("truncated TIFF", 400, "corrupt_image", body=cut(encode(photo(), "TIFF"))),
        Hostile(
            "JPEG signature then garbage", 400, "corrupt_image", body=b"\xff\xd8\xff\xe0" + b"\x13" * 200
        ),
        Hostile("PNG with a broken CRC", 400, "corrupt_image", body=good[:29] + b"\0\0\0\0" + good[33:]),
        Hostile("PNG header without pixels", 400, "corrupt_image", body=good[:33] + png_chunk(b"IEND", b"")),
        # Headers that declare more pixels than allowed
        Hostile("PNG bomb", 413, "image_too_large", body=png_declaring(100_000, 100_000)),
        Hostile(
            "GIF declaring 65535x65535",
            413,
            "image_too_large",
            body=with_size_field(encode(photo(), "GIF"), 6, "<HH", 65535, 65535),
        ),
        Hostile(
            "BMP declaring 60000x60000",
            413,
            "image_too_large",
            body=with_size_field(encode(photo(), "BMP"), 18, "<ii", 60000, 60000),
        ),
        Hostile("PNG declaring 0x0", 400, "corrupt_image", body=png_declaring(0, 0)),
        # Structures that make a decoder work for seconds: refused before it sees them
        Hostile("JPEG of 10,000 scans", 413, "image_too_large", body=jpeg_with_repeated_scans(10_000)),
        Hostile(
            "JPEG with 50,000 Exif segments", 413, "image_too_large", body=jpeg_with_exif_segments(50_000)
        ),
        Hostile(
            "TIFF with a tag of 900,000 values",
            413,
            "image_too_large",
            body=tiff_with_long_tag(65000, 3, 900_000, 2),
        ),
        Hostile(
            "TIFF resolution of 200,000 fractions",
            413,
            "image_too_large",
            body=tiff_with_long_tag(282, 5, 200_000, 8),
        ),
        # Multipart bodies
        Hostile(
            "multipart without a boundary",
            400,
            "bad_request",
            body=multipart(file_part(good)),
            content_type="multipart/form-data",
        ),
        Hostile("multipart with no parts", 400, "bad_request", body=multipart(), content_type=form),
        Hostile(
            "multipart with a charset that is not text",
            400,
            "bad_request",
            body=multipart(file_part(good)),
            content_type=form + "; charset=base64",
        ),
        Hostile(
            "multipart boundary of 300 characters, body not of the plain shape",
            400,
            "bad_request",
            body=b"preamble\r\n" + multipart(file_part(good), boundary="b" * 300),
            content_type=f"multipart/form-data; boundary={'b' * 300}",
        ),
        Hostile(
            "unterminated multipart",
            400,
            "bad_request",
            body=multipart(file_part(good), end=False)[:-2],
            content_type=form,
        ),
        Hostile(
            "part without a name",
            400,
            "bad_request",
            body=multipart(b'Content-Disposition: form-data; filename="x.png"\r\n\r\n' + good),
            content_type=form,
        ),
        Hostile(
            "file under another field name",
            400,
            "bad_request",
            body=multipart(file_part(good, name="file")),
            content_type=form,
        ),
        Hostile(
            "form with text fields only",
            400,
            "bad_request",
            body=multipart(field_part("note", b"hi")),
            content_type=form,
        ),
        Hostile(
            "too many form fields",
            400,
            "bad_request",
            body=multipart(*(field_part(f"f{i}", b"x") for i in range(33))),
            content_type=form,
        ),
        Hostile(
            "form field over 1 MB",
            400,
            "bad_request",
            body=multipart(field_part("note", b"x" * (1024 * 1024 + 1))),
            content_type=form,
        ),
        Hostile(
            "more images than allowed",
            413,
            "too_many_images",
            body=multipart(*[file_part(good)] * (max_images + 1)),
            content_type=form,
        ),
        Hostile(
            "image part that is empty", 400, "empty_image", body=multipart(file_part(b"")), content_type=form
        ),
        # Media types and sizes
        Hostile("text/plain body", 415, "unsupported_media_type", body=good, content_type="text/plain"),
        Hostile(
            "JSON body on a task route",
            415,
            "unsupported_media_type",
            body=b"{}",
            content_type="application/json",
        ),
        Hostile("no Content-Type", 415, "unsupported_media_type", body=good, content_type=None),
        Hostile("body over the byte limit", 413, "payload_too_large", body=b"\0" * (max_upload_bytes + 1)),
        # Query parameters
        Hostile("top_k of 0", 422, "invalid_parameter", body=good, params={"top_k": 0}),
        Hostile("top_k that is not a number", 422, "invalid_parameter", body=good, params={"top_k": "lots"}),
        Hostile(
            "model name with a path in it",
            422,
            "invalid_parameter",
            body=good,
            params={"model": "../../etc/passwd"},
        ),
        Hostile("version 0", 422, "invalid_parameter", body=good, params={"version": 0}),
        Hostile("unknown model", 404, "model_not_found", body=good, params={"model": "nope"}),
        Hostile("model of another task", 422, "wrong_task", body=good, params={"model": "boxes"}),
        Hostile(
            "score threshold over 1",
            422,
            "invalid_parameter",
            path="/detect",
            body=good,
            params={"score_threshold": 2},
        ),
        Hostile(
            "unknown overlay style",
            422,
            "invalid_parameter",
            path="/segment",
            body=good,
            params={"style": "neon"},
        ),
        Hostile(
            "unknown answer format",
            422,
            "invalid_parameter",
            path="/segment",
            body=good,
            params={"format": "xml"},
        ),
        Hostile(
            "a PNG answer asked for two images",
            400,
            "bad_request",
            path="/segment",
            body=multipart(file_part(good), file_part(good)),
            content_type=form,
        ),
        # Routes and methods
        Hostile("GET on an upload route", 405, "method_not_allowed", method="GET", content_type=None),
        Hostile("a task route with a trailing slash", 404, "not_found", path="/classify/", body=good),
        Hostile(
            "unknown route", 404, "not_found", path="/admin/../../etc/passwd", method="GET", content_type=None
        ),
        # The Open Inference Protocol
        Hostile(
            "V2: malformed JSON", 400, None, path=v2, body=b'{"inputs": [', content_type="application/json"
        ),
        Hostile("V2: a JSON array", 400, None, path=v2, body=b"[1, 2, 3]", content_type="application/json"),
        Hostile(
            "V2: JSON nested 100000 deep",
            400,
            None,
            path=v2,
            body=b"[" * 100_000 + b"]" * 100_000,
            content_type="application/json",
        ),
        Hostile(
            "V2: wrong shape",
            400,
            None,
            path=v2,
            body=infer_body(tensor={"shape": [1, 4, 4, 3], "data": [0.0] * 48}),
        ),
        Hostile("V2: wrong datatype", 400, None, path=v2, body=infer_body(tensor={"datatype": "BYTES"})),
        Hostile(
            "V2: data shorter than its shape",
            400,
            None,
            path=v2,
            body=infer_body(tensor={"data": [0.0] * 10}),
        ),
        Hostile("V2: NaN is not JSON", 400, None, path=v2, body=infer_body().replace(b"0.0]", b"NaN]")),
        Hostile("V2: unknown input", 400, None, path=v2, body=infer_body(tensor={"name": "pixels"})),
        Hostile("V2: unknown output", 400, None, path=v2, body=infer_body(outputs=[{"name": "logits"}])),
        Hostile(
            "V2: binary size past the body",
            400,
            None,
            path=v2,
            body=binary_header,
            headers={"Inference-Header-Content-Length": str(len(binary_header))},
        ),
        Hostile(
            "V2: header length that is not a number",
            400,
            None,
            path=v2,
            body=infer_body(),
            headers={"Inference-Header-Content-Length": "many"},
        ),
        Hostile(
            "V2: header length past the body",
            400,
            None,
            path=v2,
            body=infer_body(),
            headers={"Inference-Header-Content-Length": "99999"},
        ),
        Hostile(
            "V2: 20,000 dimensions of 10**18",
            400,
            None,
            path=v2,
            body=infer_body(tensor={"shape": [10**18] * 20_000, "data": [0.0]}),
        ),
        Hostile(
            "V2: 65 dimensions",
            400,
            None,
            path=v2,
            body=infer_body(tensor={"shape": [1] * 65, "data": [0.0]}),
        ),
        Hostile(
            "V2: a dimension of 2**63",
            400,
            None,
            path=v2,
            body=infer_body(tensor={"shape": [2**63, 0], "data": []}),
        ),
        Hostile(
            "V2: JSON data nested past its shape",
            400,
            None,
            path=v2,
            body=infer_body(tensor={"data": [[0]] * 100_000}),
        ),
        Hostile("V2: unknown model", 404, None, path="/v2/models/nope/infer", body=infer_body()),
        Hostile(
            "V2: body over the byte limit",
            413,
            None,
            path=v2,
            body=b" " * (max_upload_bytes + 1),
            content_type="application/json",
        ),
    ]
