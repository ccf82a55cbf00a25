"""A run's `model.keras` loads with plain `keras.models.load_model` in a fresh process that imports only
Keras and `training.architectures.custom_objects`, compiled loss included; and a run of a custom-layer
architecture leaves it through the commands that load it in a process of their own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT
from photos import write_photo_folders

pytest.importorskip("tensorflow")

from training.architectures import architecture
from training.architectures.localize import LocalizationLoss
from training.architectures.yolo import GridDetectionLoss
from training.cli import main as cli

LOAD = """
import sys
import keras
import training.architectures.custom_objects
for path in sys.argv[1:]:
    model = keras.models.load_model(path)
    print(path, model.name, type(model.loss).__name__)
"""
# Every architecture with a custom layer or loss of its own, and both custom preprocessing layers.
SAVED = [
    ("classify", "resnet34"),
    ("classify", "resnet50"),
    ("classify", "densenet121"),
    ("detect", "grid"),
    ("detect", "localize"),
]


@pytest.mark.parametrize(("task", "name"), SAVED)
def test_a_saved_model_loads_in_a_fresh_process(tmp_path: Path, task: str, name: str) -> None:
    model = architecture(task, name).build((32, 32, 3), 3)
    loss = {"grid": GridDetectionLoss(), "localize": LocalizationLoss(0.7, 0.3)}.get(
        name, "sparse_categorical_crossentropy"
    )
    model.compile(optimizer="adam", loss=loss)
    model.save(tmp_path / "model.keras")
    finished = subprocess.run(
        [sys.executable, "-c", LOAD, str(tmp_path / "model.keras")],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert model.name in finished.stdout
    assert type(loss).__name__ in finished.stdout


@pytest.mark.slow
def test_a_resnet34_run_exports_evaluates_and_predicts_in_fresh_processes(tmp_path: Path) -> None:
    photos = write_photo_folders(tmp_path / "photos", per_class=6, classes=("astronaut", "coffee", "rocket"))
    run = tmp_path / "run"
    train = ["train", "classify", "--data", str(photos), "--run", str(run), "--arch", "resnet34"]
    # One epoch proves the saved model loads, not that it is any use.
    assert cli([*train, "--size", "32", "--epochs", "1", "--batch", "8", "--allow-useless"]) == 0
    photo = str(next(photos.rglob("*.jpg")))
    for command in (
        ["export", "--run", str(run), "--name", "r34", "--models-dir", str(tmp_path / "models")],
        ["evaluate", "--run", str(run)],
        ["predict", photo, "--model", str(run)],
    ):
        finished = subprocess.run(
            [sys.executable, "-m", "training", *command], cwd=REPO_ROOT, capture_output=True, text=True
        )
        assert finished.returncode == 0, f"{command[0]}: {finished.stderr[-2000:]}"
    assert (tmp_path / "models" / "r34" / "1" / "model.onnx").stat().st_size > 1_000_000
