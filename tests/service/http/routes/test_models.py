"""`/models`, readiness and liveness, and the offline docs."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import httpx
import onnx_models
import pytest
from conftest import ServerFactory
from spec_examples import assert_like, error_example

from service.app import create_app
from service.settings import Settings


def test_models_lists_task_version_labels_input_provider_metrics(client: httpx.Client) -> None:
    body = client.get("/models").json()
    models = {model["name"]: model for model in body["models"]}
    assert sorted(models) == ["boxes", "boxes-stretch", "brightness", "colours", "threshold"]
    colours = models["colours"]
    assert colours["task"] == "classify"
    assert colours["default_for"] == "classify"
    assert colours["default_reason"] == "configured"
    assert colours["latest"] == 2
    assert [v["version"] for v in colours["versions"]] == [1, 2]
    version = colours["versions"][-1]
    assert version["labels"] == ["red", "green", "blue"]
    assert version["input"] == {
        "name": "image",
        "height": 8,
        "width": 8,
        "channels": 3,
        "layout": "NHWC",
        "dtype": "float32",
    }
    assert version["provider"] == "cpu"
    assert version["metrics"] == {"accuracy": 1.0, "dataset": "hand-built"}
    assert models["brightness"]["default_for"] is models["brightness"]["default_reason"] is None


def test_models_reports_refused_files_with_the_wrong_key(client: httpx.Client) -> None:
    failures = {f["name"]: f for f in client.get("/models").json()["failures"]}
    assert failures["misnamed"]["key"] == "vision.name"
    assert "someone-else" in failures["misnamed"]["message"]
    assert failures["misshapen"]["key"] == "vision.input"


def test_one_model(client: httpx.Client) -> None:
    body = client.get("/models/threshold").json()
    assert body["task"] == "segment"
    assert body["versions"][0]["labels"] == ["pet", "background", "border"]
    assert client.get("/models/nope").json()["error"]["code"] == "model_not_found"


def test_ready_lists_loaded_versions(client: httpx.Client) -> None:
    response = client.get("/healthz/ready")
    assert response.status_code == 200
    assert "colours:2" in response.json()["models"]


def test_not_ready_until_models_are_loaded(test_models_dir: Path) -> None:
    # Without the lifespan having run, nothing is loaded yet: readiness must say so, and inference must wait.
    app = create_app(Settings(models_dir=test_models_dir))
    transport = httpx.ASGITransport(app=app)

    async def probe() -> tuple[httpx.Response, httpx.Response, httpx.Response]:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as ac:
            return (
                await ac.get("/healthz/ready"),
                await ac.get("/healthz/live"),
                await ac.post("/classify", content=b"x", headers={"Content-Type": "image/png"}),
            )

    ready, live, classify = asyncio.run(probe())
    assert ready.status_code == 503
    assert ready.json() == {"status": "loading", "reason": "models are still loading", "models": []}
    assert live.status_code == 200
    assert classify.status_code == 503
    assert_like(error_example("not_ready", "/classify", 503), classify.json())
    assert classify.headers["retry-after"] == "1"


def test_ready_is_503_with_reason_when_a_default_model_is_broken(
    start_server: ServerFactory, tmp_path: Path
) -> None:
    onnx_models.fixed_detector(tmp_path, name="boxes")
    onnx_models.threshold_segmenter(tmp_path)
    onnx_models.misshapen_model(tmp_path)
    server = start_server(tmp_path, wait=False, default_models='{"classify": "misshapen"}')
    server.wait("/healthz/live")
    deadline_response = _eventually_loaded(server.client)
    assert deadline_response.status_code == 503
    assert "misshapen" in deadline_response.json()["reason"]
    # The models that did load keep serving.
    assert server.client.get("/models/boxes").status_code == 200
    # Prometheus sees it too, for the VisionNotReady alert (deploy/alerts.yml).
    assert "\nvision_ready 0.0\n" in server.client.get("/metrics").text


def test_a_ready_server_says_so_to_prometheus(client: httpx.Client) -> None:
    assert client.get("/healthz/ready").status_code == 200
    assert "\nvision_ready 1.0\n" in client.get("/metrics").text


def _eventually_loaded(client: httpx.Client) -> httpx.Response:
    for _ in range(200):
        response = client.get("/healthz/ready")
        if response.json()["status"] != "loading":
            return response
        time.sleep(0.05)
    pytest.fail("models never finished loading")


def test_empty_repository_is_not_ready(start_server: ServerFactory, tmp_path: Path) -> None:
    server = start_server(tmp_path, wait=False)
    server.wait("/healthz/live")
    response = _eventually_loaded(server.client)
    assert response.status_code == 503
    assert response.json()["reason"] == "no model is loaded"


def test_missing_default_falls_back_to_the_task_s_first_model(
    start_server: ServerFactory, test_models_dir: Path, tmp_path: Path
) -> None:
    shutil.copytree(test_models_dir / "brightness", tmp_path / "brightness")
    server = start_server(tmp_path)
    brightness = server.client.get("/models/brightness").json()
    assert (brightness["default_for"], brightness["default_reason"]) == ("classify", "first_by_name")


def test_docs_work_offline(client: httpx.Client) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert "cdn" not in page.text.lower()
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert f"/static-offline-docs/{asset}" in page.text
        assert client.get(f"/static-offline-docs/{asset}").status_code == 200
    assert client.get("/redoc").status_code == 200
    schema = client.get("/openapi.json").json()
    assert {"/classify", "/detect", "/segment", "/models", "/healthz/ready"} <= set(schema["paths"])
    classify = schema["paths"]["/classify"]["post"]
    assert "multipart/form-data" in classify["requestBody"]["content"]
    assert {"400", "413", "415", "422", "503"} <= set(classify["responses"])


def test_a_3_gb_file_and_a_link_out_are_listed_and_the_rest_serves(
    start_server: ServerFactory, tmp_path: Path
) -> None:
    root, elsewhere = tmp_path / "models", tmp_path / "elsewhere"
    onnx_models.colour_classifier(root)
    onnx_models.brightness_classifier(elsewhere)
    (root / "brightness").symlink_to(elsewhere / "brightness")
    huge = root / "huge" / "1" / "model.onnx"
    huge.parent.mkdir(parents=True)
    with huge.open("wb") as sparse:  # 3 GB on paper, no disk blocks: a read would fill the memory
        sparse.truncate(3 * 1024**3)
    server = start_server(root, default_models='{"classify": "colours"}')
    failures = {f["name"]: f for f in server.client.get("/models").json()["failures"]}
    assert failures.keys() == {"brightness", "huge"}
    assert "link out of the repository" in failures["brightness"]["message"]
    assert "over VISION_MAX_MODEL_BYTES" in failures["huge"]["message"]
    assert server.client.get("/healthz/ready").status_code == 200
    assert server.client.get("/models/colours").status_code == 200
