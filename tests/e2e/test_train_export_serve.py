"""Synthesise a few dozen images, train each task an epoch, export, serve with uvicorn, answer over HTTP."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from conftest import LiveServer, ServerFactory, encode
from PIL import Image

pytest.importorskip("tensorflow")

from training.cli import main as training_cli
from training.data.synth import SHAPES

pytestmark = pytest.mark.slow

TASKS = {"classify": "single", "detect": "scenes", "segment": "single"}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, start_server: ServerFactory) -> LiveServer:
    root = tmp_path_factory.mktemp("pipeline")
    assert training_cli(["synth", "--out", str(root / "single"), "--count", "24", "--seed", "3"]) == 0
    scenes = ["synth", "--out", str(root / "scenes"), "--count", "24", "--seed", "4", "--max-objects", "3"]
    assert training_cli(scenes) == 0
    for task, data in TASKS.items():
        run = str(root / f"run-{task}")
        train = ["train", task, "--data", str(root / data), "--run", run, "--size", "32"]
        # One epoch proves the path from training to serving, not the model: --allow-useless keeps exit 0.
        assert training_cli([*train, "--epochs", "1", "--batch", "8", "--allow-useless"]) == 0
        export = ["export", "--run", run, "--name", f"e2e-{task}", "--models-dir", str(root / "models")]
        assert training_cli(export) == 0
    defaults = {task: f"e2e-{task}" for task in TASKS}
    return start_server(root / "models", default_models=json.dumps(defaults))


def scene_jpeg() -> bytes:
    return encode(Image.new("RGB", (120, 90), (40, 120, 200)), "JPEG")


def test_all_trained_models_load(served: LiveServer) -> None:
    body = served.client.get("/models").json()
    assert body["failures"] == []
    assert {m["name"]: m["default_for"] for m in body["models"]} == {f"e2e-{t}": t for t in TASKS}


def test_classify_answers_with_the_shape_labels(served: LiveServer) -> None:
    response = served.client.post("/classify", files={"image": ("a.jpg", scene_jpeg())}, params={"top_k": 6})
    assert response.status_code == 200, response.text
    predictions = response.json()["results"][0]["predictions"]
    assert sorted(p["label"] for p in predictions) == sorted(SHAPES)
    assert sum(p["probability"] for p in predictions) == pytest.approx(1.0, abs=1e-4)


def test_detect_answers_boxes_inside_the_image(served: LiveServer) -> None:
    params = {"score_threshold": 0.0, "max_detections": 5}
    response = served.client.post("/detect", files={"image": ("a.jpg", scene_jpeg())}, params=params)
    assert response.status_code == 200, response.text
    for detection in response.json()["results"][0]["detections"]:
        box = detection["box"]
        assert 0 <= box["x_min"] <= box["x_max"] <= 120
        assert 0 <= box["y_min"] <= box["y_max"] <= 90
        assert detection["label"] in SHAPES


def test_segment_answers_a_trimap_of_the_input_size(served: LiveServer) -> None:
    response = served.client.post("/segment", files={"image": ("a.jpg", scene_jpeg())})
    assert response.status_code == 200, response.text
    mask = np.asarray(Image.open(io.BytesIO(response.content)))
    assert mask.shape == (90, 120)
    assert set(np.unique(mask).tolist()) <= {1, 2, 3}
