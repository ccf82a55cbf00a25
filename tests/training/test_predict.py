"""`python -m training predict` answers for local files with the JSON the live service gives for them."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from bundled import MODELS_DIR
from conftest import REPO_ROOT, LiveServer

from training.data.synth import render_scene


def predict(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "training", "predict", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def scene_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    root = tmp_path_factory.mktemp("predict")
    rng = np.random.default_rng(12)
    paths = []
    for index in range(2):
        buffer = io.BytesIO()
        render_scene(rng, max_objects=3).image.save(buffer, "JPEG", quality=90)
        paths.append(root / f"scene-{index}.jpg")
        paths[-1].write_bytes(buffer.getvalue())
    return paths


def same_answer(local: object, served: object) -> None:
    """Equal structure and strings; numbers to within float32 noise."""
    if isinstance(served, dict):
        assert isinstance(local, dict)
        assert local.keys() == served.keys()
        for key in served:
            same_answer(local[key], served[key])
    elif isinstance(served, list):
        assert isinstance(local, list)
        assert len(local) == len(served)
        for a, b in zip(local, served, strict=True):
            same_answer(a, b)
    elif isinstance(served, float):
        assert local == pytest.approx(served, abs=1e-5)
    else:
        assert local == served


@pytest.mark.parametrize(
    ("model", "route"),
    [
        ("shapes-classifier", "/classify"),
        ("shapes-detector", "/detect"),
        ("shapes-segmenter", "/segment/json"),
    ],
)
def test_predict_prints_what_the_service_answers(
    model: str, route: str, scene_files: list[Path], bundled_server: LiveServer
) -> None:
    finished = predict(*map(str, scene_files), "--model", str(MODELS_DIR / model / "1" / "model.onnx"))
    assert finished.returncode == 0, finished.stderr
    files = [("image", path.read_bytes()) for path in scene_files]
    separator = "&" if "?" in route else "?"
    served = bundled_server.client.post(f"{route}{separator}model={model}", files=files)
    assert served.status_code == 200, served.text
    same_answer(json.loads(finished.stdout), served.json())


def one_line_refusal(finished: subprocess.CompletedProcess[str]) -> str:
    assert finished.returncode == 2
    (line,) = finished.stderr.strip().splitlines()
    assert line.startswith("predict: ")
    return line


def test_a_file_that_is_no_image_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "notes.jpg").write_text("plain text")
    model = MODELS_DIR / "shapes-classifier" / "1" / "model.onnx"
    assert "unsupported_image" in one_line_refusal(
        predict(str(tmp_path / "notes.jpg"), "--model", str(model))
    )


def test_a_file_that_is_no_model_is_one_line(tmp_path: Path, scene_files: list[Path]) -> None:
    (tmp_path / "model.onnx").write_bytes(b"not onnx")
    line = one_line_refusal(predict(str(scene_files[0]), "--model", str(tmp_path / "model.onnx")))
    assert "is not a model the service can serve" in line


def test_more_files_than_one_request_may_carry_are_answered_in_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    paths = []
    for index in range(20):  # the service takes 16 images per request by default
        paths.append(tmp_path / f"{index}.png")
        render_scene(rng).image.save(paths[-1])
    model = MODELS_DIR / "shapes-classifier" / "1" / "model.onnx"
    finished = predict(*map(str, paths), "--model", str(model))
    assert finished.returncode == 0, finished.stderr
    results = json.loads(finished.stdout)["results"]
    alone = json.loads(predict(str(paths[17]), "--model", str(model)).stdout)["results"][0]
    assert len(results) == 20
    same_answer(results[17], alone)


def test_a_missing_model_file_is_one_line(scene_files: list[Path], tmp_path: Path) -> None:
    line = one_line_refusal(predict(str(scene_files[0]), "--model", str(tmp_path / "model.onnx")))
    assert f"no such model file: {tmp_path / 'model.onnx'}" in line
