"""Model control (routes/repository.py, Triton's model repository extension) through a live server: off
without an admin key, only that key opens it, and tritonclient's load, unload and index calls work."""

from __future__ import annotations

from pathlib import Path

import httpx
import onnx_models
import pytest
import tritonclient.http as triton_http
from conftest import LiveServer, ServerFactory, encode, solid
from tritonclient.utils import InferenceServerException

ADMIN_KEY = "admin-key-for-the-tests-0123"
ADMIN = {"X-API-Key": ADMIN_KEY}
RED_PNG = encode(solid((255, 0, 0)), "PNG")


@pytest.fixture
def controlled(start_server: ServerFactory, tmp_path: Path) -> tuple[LiveServer, Path]:
    onnx_models.colour_classifier(tmp_path, name="m", version=1)
    server = start_server(
        tmp_path, default_models='{"classify": "m"}', admin_key=ADMIN_KEY, api_keys="user-key"
    )
    return server, tmp_path


def top(server: LiveServer) -> tuple[int, str]:
    answer = server.client.post(
        "/classify", files={"image": ("red.png", RED_PNG, "image/png")}, headers={"X-API-Key": "user-key"}
    ).json()
    return answer["model"]["version"], answer["results"][0]["predictions"][0]["label"]


def test_model_control_is_off_without_an_admin_key(client: httpx.Client) -> None:
    answer = client.post("/v2/repository/index")
    assert answer.status_code == 403
    assert answer.json() == {"error": "model control is off: the operator has not set VISION_ADMIN_KEY"}
    assert "model_repository" not in client.get("/v2").json()["extensions"]


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"X-API-Key": "user-key"}, 403), ({"Authorization": "Bearer wrong"}, 403)],
)
def test_only_the_admin_key_opens_model_control(
    controlled: tuple[LiveServer, Path], headers: dict[str, str], status: int
) -> None:
    server, _ = controlled
    for path in ("/v2/repository/index", "/v2/repository/models/m/load", "/v2/repository/models/m/unload"):
        assert server.client.post(path, headers=headers).status_code == status
    assert top(server) == (1, "red")


def test_load_swaps_in_a_new_version_and_unload_takes_a_model_out(
    controlled: tuple[LiveServer, Path],
) -> None:
    server, root = controlled
    assert "model_repository" in server.client.get("/v2").json()["extensions"]
    onnx_models.brightness_classifier(root, name="m", version=2)
    loaded = server.client.post("/v2/repository/models/m/load", headers=ADMIN)
    assert loaded.status_code == 200
    assert loaded.json() == [
        {"name": "m", "version": "1", "state": "READY", "reason": ""},
        {"name": "m", "version": "2", "state": "READY", "reason": ""},
    ]
    assert top(server) == (2, "dark")
    assert server.client.post("/v2/repository/models/m/unload", headers=ADMIN).json() == []
    assert server.client.post("/v2/repository/index", headers=ADMIN).json() == []
    assert server.client.get("/v2/models/m/ready", headers={"X-API-Key": "user-key"}).status_code == 404


def test_a_file_that_fails_to_load_is_reported_and_the_old_version_serves(
    controlled: tuple[LiveServer, Path],
) -> None:
    server, root = controlled
    (root / "m" / "1" / "model.onnx").write_bytes(b"not a model any more")
    answer = server.client.post("/v2/repository/models/m/load", headers=ADMIN)
    assert answer.status_code == 400
    message = answer.json()["error"]
    assert message.startswith("failed to load 'm': version 1: model.onnx: cannot be loaded")
    assert message.endswith("still serving version 1")
    assert top(server) == (1, "red")
    failures = server.client.get("/models", headers={"X-API-Key": "user-key"}).json()["failures"]
    assert [(f["name"], f["version"], f["key"]) for f in failures] == [("m", "1", "model.onnx")]
    assert "refused model m/1" in server.logs()


def test_loading_a_name_with_no_directory_is_404(controlled: tuple[LiveServer, Path]) -> None:
    server, _ = controlled
    answer = server.client.post("/v2/repository/models/absent/load", headers=ADMIN)
    assert (answer.status_code, answer.json()) == (
        404,
        {"error": "no model named 'absent'"},
    )


def test_tritonclient_controls_the_repository(controlled: tuple[LiveServer, Path]) -> None:
    server, root = controlled
    triton = triton_http.InferenceServerClient(server.url.removeprefix("http://"))
    try:
        index = triton.get_model_repository_index(headers=ADMIN)
        assert index == [{"name": "m", "version": "1", "state": "READY", "reason": ""}]
        onnx_models.brightness_classifier(root, name="m", version=2)
        triton.load_model("m", headers=ADMIN)
        assert triton.is_model_ready("m", "2", headers={"X-API-Key": "user-key"})
        triton.unload_model("m", headers=ADMIN)
        assert not triton.is_model_ready("m", headers={"X-API-Key": "user-key"})
        with pytest.raises(InferenceServerException, match="not accepted"):
            triton.load_model("m", headers={"X-API-Key": "user-key"})
    finally:
        triton.close()
