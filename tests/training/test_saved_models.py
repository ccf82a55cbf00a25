"""A run's `model.keras` loads with plain `keras.models.load_model` in a fresh process that imports only
Keras and `training.architectures.custom_objects`, compiled loss included. test_catalogue.py carries every
architecture's run through the commands that load it, in a process that never built it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT

pytest.importorskip("tensorflow")

from training.architectures import architecture
from training.architectures.localize import LocalizationLoss
from training.architectures.yolo import GridDetectionLoss

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


def saved(tmp_path: Path, task: str, name: str) -> tuple[Path, str, str]:
    """`name` built at 32 px, compiled with its loss and saved; with its model and loss class names."""
    model = architecture(task, name).build((32, 32, 3), 3)
    loss = {"grid": GridDetectionLoss(), "localize": LocalizationLoss(0.7, 0.3)}.get(
        name, "sparse_categorical_crossentropy"
    )
    model.compile(optimizer="adam", loss=loss)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    return path, model.name, type(loss).__name__


def test_saved_models_load_in_a_fresh_process(tmp_path: Path) -> None:
    """One process loads them all: each process spends about 9 s importing TensorFlow before it loads."""
    models = [saved(tmp_path, task, name) for task, name in SAVED]
    finished = subprocess.run(
        [sys.executable, "-c", LOAD, *(str(path) for path, _, _ in models)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    loaded = finished.stdout.splitlines()
    assert loaded == [f"{path} {model} {loss}" for path, model, loss in models]
