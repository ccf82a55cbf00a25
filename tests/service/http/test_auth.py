"""API keys: none configured means open; configured means 401 without a key and 403 with a wrong one."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from conftest import LiveServer, ServerFactory, encode, solid


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
