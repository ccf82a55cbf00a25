"""Classification + localisation: `localize` trains on one photo pasted per image, exports as a K = 1 `detect`
model, and `/detect` returns its box; a folder-per-class set, which has no boxes, is refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT, ServerFactory
from photos import write_photo_folders, write_photo_scenes

pytest.importorskip("tensorflow")

from service.core.model import open_model
from service.core.runtime import plan_execution
from training.cli import main as cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("localize")
    write_photo_scenes(root / "data", count=40, seed=4)
    train = [
        "train",
        "detect",
        "--arch",
        "localize",
        "--data",
        str(root / "data"),
        "--run",
        str(root / "run"),
    ]
    # Two epochs on 40 scenes prove the export and serving path, not the model: --allow-useless.
    weights = ["--loss-weights", "0.7", "0.3"]
    assert cli([*train, "--size", "32", "--epochs", "2", "--batch", "8", *weights, "--allow-useless"]) == 0
    assert (
        cli(["export", "--run", str(root / "run"), "--name", "one-box", "--models-dir", str(root / "models")])
        == 0
    )
    return root


def test_it_exports_as_a_detect_model_with_one_candidate(exported: Path) -> None:
    model = open_model(
        exported / "models" / "one-box" / "1" / "model.onnx",
        plan_execution("cpu", cores=1, threads=1, workers=1),
    )
    assert model.metadata.task == "detect"
    shapes = {output.name: output.shape for output in model.session.get_outputs()}
    assert shapes[model.metadata.outputs["boxes"]][1:] == [1, 4]
    assert shapes[model.metadata.outputs["iou"]][1:] == [1]
    metrics = json.loads((exported / "run" / "metrics.json").read_text())
    assert 0 <= metrics["accuracy"] <= 1
    assert 0 <= metrics["box_iou"] <= 1
    config = json.loads((exported / "run" / "run.json").read_text())["config"]
    assert config["loss_weights"] == [0.7, 0.3]


def test_detect_returns_its_box(exported: Path, start_server: ServerFactory) -> None:
    server = start_server(exported / "models", default_models=json.dumps({"detect": "one-box"}))
    image = next((exported / "data" / "images").glob("*.jpg"))
    response = server.client.post("/detect?score_threshold=0", files={"image": image.read_bytes()})
    assert response.status_code == 200, response.text
    result = response.json()["results"][0]
    (found,) = result["detections"]
    box = found["box"]
    assert 0 <= box["x_min"] < box["x_max"] <= result["image"]["width"]
    assert 0 <= box["y_min"] < box["y_max"] <= result["image"]["height"]


def test_a_folder_per_class_set_is_refused_for_localize(tmp_path: Path) -> None:
    write_photo_folders(tmp_path / "photos", per_class=2, classes=("coffee", "rocket"))
    finished = subprocess.run(
        [
            sys.executable,
            "-m",
            "training",
            "train",
            "detect",
            "--arch",
            "localize",
            "--data",
            str(tmp_path / "photos"),
            "--run",
            str(tmp_path / "run"),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert finished.returncode == 2
    (line,) = finished.stderr.strip().splitlines()
    assert "is a folder per class, which has labels only" in line
    assert not (tmp_path / "run").exists()


def test_scenes_of_several_objects_are_refused_before_training(tmp_path: Path) -> None:
    assert (
        cli(
            ["synth", "--out", str(tmp_path / "scenes"), "--count", "30", "--seed", "2", "--max-objects", "3"]
        )
        == 0
    )
    finished = subprocess.run(
        [sys.executable, "-m", "training", "train", "detect", "--arch", "localize", "--size", "32",
         "--data", str(tmp_path / "scenes"), "--run", str(tmp_path / "run")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert finished.returncode == 2, finished.stderr
    line = finished.stderr.strip().splitlines()[-1]
    assert line.startswith("train: localize learns one object per image, but ")
    assert "--max-objects 1" in line
    assert "epoch" not in finished.stdout
    assert not (tmp_path / "run").exists()
