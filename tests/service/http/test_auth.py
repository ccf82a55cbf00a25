"""API keys: none configured means open; configured means 401 without a key and 403 with a wrong one."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from conftest import LiveServer, ServerFactory, encode, solid

from service.keys import ApiKeys


@pytest.fixture(scope="module")
def guarded(
    start_server: ServerFactory, test_models_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> LiveServer:
    keys_file = tmp_path_factory.mktemp("keys") / "keys.txt"
    keys_file.write_text("# rotated monthly\nfrom-file\n\n")
    return start_server(test_models_dir, api_keys="alpha, beta", api_keys_file=keys_file)


def classify(server: LiveServer, headers: dict[str, str]) -> httpx.Response:
    files = {"image": ("red.png", encode(solid((255, 0, 0)), "PNG"))}
    return server.client.post("/classify", files=files, headers=headers)


def test_missing_key_is_401(guarded: LiveServer) -> None:
    response = classify(guarded, {})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert response.headers["www-authenticate"] == "Bearer"


def test_wrong_key_is_403(guarded: LiveServer) -> None:
    response = classify(guarded, {"X-API-Key": "alphx"})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"


@pytest.mark.parametrize(
    "headers",
    [
        {"X-API-Key": "alpha"},
        {"X-API-Key": "beta"},
        {"Authorization": "Bearer beta"},
        {"X-API-Key": "from-file"},
    ],
)
def test_accepted_keys(guarded: LiveServer, headers: dict[str, str]) -> None:
    assert classify(guarded, headers).status_code == 200


def test_models_listing_needs_a_key_but_probes_do_not(guarded: LiveServer) -> None:
    assert guarded.client.get("/models").status_code == 401
    assert guarded.client.get("/models", headers={"X-API-Key": "alpha"}).status_code == 200
    assert guarded.client.get("/healthz/ready").status_code == 200
    assert guarded.client.get("/healthz/live").status_code == 200


def test_no_keys_means_open(client: httpx.Client) -> None:
    files = {"image": ("red.png", encode(solid((255, 0, 0)), "PNG"))}
    assert client.post("/classify", files=files).status_code == 200


@pytest.mark.parametrize(
    ("content", "fragment"),
    [(None, "No such file"), ("", "holds no key"), ("# only a comment\n\n", "holds no key")],
)
def test_a_key_file_that_gives_no_key_stops_the_service_at_start(
    start_server: ServerFactory, test_models_dir: Path, tmp_path: Path, content: str | None, fragment: str
) -> None:
    keys_file = tmp_path / "keys.txt"
    if content is not None:
        keys_file.write_text(content)
    server = start_server(test_models_dir, wait=False, api_keys_file=keys_file)
    assert server.process.wait(timeout=60) != 0
    assert "configuration refused: VISION_API_KEYS_FILE" in server.logs()
    assert fragment in server.logs()


def test_protected_metrics_without_keys_stop_the_service_at_start(
    start_server: ServerFactory, test_models_dir: Path
) -> None:
    server = start_server(test_models_dir, wait=False, protect_metrics="true")
    assert server.process.wait(timeout=60) != 0
    assert "VISION_PROTECT_METRICS needs keys" in server.logs()


def eventually(check: Callable[[], bool], seconds: float = 10) -> bool:
    """Whether `check` turns true within `seconds` (the key file is looked at once a second)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def test_keys_rotate_with_the_file_and_never_fall_open(
    start_server: ServerFactory, test_models_dir: Path, tmp_path: Path
) -> None:
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text("first-key\n")
    server = start_server(test_models_dir, api_keys="fixed", api_keys_file=keys_file)
    assert classify(server, {"X-API-Key": "first-key"}).status_code == 200

    keys_file.write_text("second-key-longer\n")
    assert eventually(lambda: classify(server, {"X-API-Key": "first-key"}).status_code == 403)
    assert classify(server, {"X-API-Key": "second-key-longer"}).status_code == 200

    keys_file.unlink()
    assert eventually(lambda: classify(server, {"X-API-Key": "second-key-longer"}).status_code == 403)
    assert classify(server, {}).status_code == 401
    assert classify(server, {"X-API-Key": "fixed"}).status_code == 200
    assert "its keys are no longer accepted" in server.logs()


def test_protected_metrics_and_readiness_detail_need_a_key(
    start_server: ServerFactory, test_models_dir: Path
) -> None:
    server = start_server(test_models_dir, api_keys="ops", protect_metrics="true")
    assert server.client.get("/metrics").status_code == 401
    assert server.client.get("/metrics", headers={"Authorization": "Bearer ops"}).status_code == 200
    anonymous = server.client.get("/healthz/ready")
    assert anonymous.status_code == 200
    assert anonymous.json() == {"status": "ok", "reason": None, "models": []}
    detailed = server.client.get("/healthz/ready", headers={"X-API-Key": "ops"}).json()
    assert "colours:2" in detailed["models"]
    assert server.client.get("/healthz/live").status_code == 200


def test_the_key_file_is_read_once_a_second_at_most(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text("# rotated monthly\n  one  \n\ntwo\n")
    keys = ApiKeys(["env"], keys_file)
    assert keys.required
    assert [keys.accepts(key) for key in ("one", "two", "env", "three", "# rotated monthly")] == [
        True,
        True,
        True,
        False,
        False,
    ]
    keys_file.write_text("three\n")
    assert keys.accepts("one")  # not looked at again within the second
    monkeypatch.setattr("service.keys.RECHECK_SECONDS", 0.0)
    assert keys.accepts("three")
    assert not keys.accepts("one")
    assert not ApiKeys([], None).required


@pytest.mark.parametrize("path", ["/classify", "/segment", "/v2/models/colours/infer"])
def test_the_key_is_checked_before_any_body_byte_is_read(guarded: LiveServer, path: str) -> None:
    # A head announcing a megabyte, and no body at all: the answer can only come from the key check.
    with socket.create_connection(("127.0.0.1", guarded.port), timeout=5) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
            "Content-Length: 1000000\r\n\r\n".encode()
        )
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 401")


def test_a_chunked_body_without_a_key_is_refused_and_the_connection_closed(guarded: LiveServer) -> None:
    with socket.create_connection(("127.0.0.1", guarded.port), timeout=5) as sock:
        sock.sendall(
            b"POST /classify HTTP/1.1\r\nHost: t\r\nContent-Type: image/png\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n4\r\n\x89PNG\r\n"
        )
        answer = b""
        while received := sock.recv(65536):
            answer += received
    head = answer.split(b"\r\n\r\n", 1)[0].lower()
    assert head.startswith(b"http/1.1 401")
    assert b"connection: close" in head
