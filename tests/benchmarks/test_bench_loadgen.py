"""The load generator's HTTP/1.1 framing: requests, status lines, Content-Length and chunked bodies."""

from __future__ import annotations

import asyncio

import pytest

from benchmarks.loadgen import BOUNDARY, Target, encode_request, parse_head, read_body


def test_encoded_request_declares_the_exact_body_length() -> None:
    request = encode_request(Target("127.0.0.1", 18299, "/classify?top_k=3"), b"\xff\xd8jpeg", 0)
    head, body = request.split(b"\r\n\r\n", 1)
    assert head.startswith(b"POST /classify?top_k=3 HTTP/1.1\r\n")
    assert f"Content-Length: {len(body)}".encode() in head
    assert f"boundary={BOUNDARY}".encode() in head
    assert b'name="image"; filename="image0.jpg"' in body
    assert body.endswith(f"--{BOUNDARY}--\r\n".encode())


def test_parse_head_reads_status_and_lower_cases_headers() -> None:
    head = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n"
    status, headers = parse_head(head)
    assert status == 503
    assert headers == {"retry-after": "1", "content-length": "0"}


def test_parse_head_refuses_what_is_not_http() -> None:
    with pytest.raises(ValueError, match="status line"):
        parse_head(b"SSH-2.0-OpenSSH\r\n\r\n")


def _reader(data: bytes) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    return reader


def test_read_body_by_content_length_leaves_the_next_response_unread() -> None:
    async def scenario() -> tuple[int, bytes]:
        reader = _reader(b"hello" + b"HTTP/1.1 200 OK")
        return await read_body(reader, {"content-length": "5"}), await reader.read()

    assert asyncio.run(scenario()) == (5, b"HTTP/1.1 200 OK")


def test_read_body_decodes_chunked_encoding() -> None:
    async def scenario() -> tuple[int, bytes]:
        reader = _reader(b"4\r\nWiki\r\n6;ext=1\r\npedia \r\n0\r\n\r\nNEXT")
        return await read_body(reader, {"transfer-encoding": "chunked"}), await reader.read()

    assert asyncio.run(scenario()) == (10, b"NEXT")
