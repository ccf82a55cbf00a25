"""Synthesise, train each task for an epoch, export, load the ONNX files the way the service does, and serve
them as the tasks' defaults on a live server that answers over HTTP."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from conftest import LiveServer, ServerFactory, encode
from PIL import Image

from service.core.model import open_model
from service.core.runtime import plan_execution

pytest.importorskip("tensorflow")

import keras

from training.cli import main as cli
from training.data.synth import SHAPES
from training.train import weighted_layers

pytestmark = pytest.mark.slow

# One epoch on a few dozen images proves the plumbing, not a model: --allow-useless keeps the exit 0.
SMOKE = ["--epochs", "1", "--batch", "8", "--allow-useless"]

TASKS = [("classify", "single", 32), ("detect", "scenes", 32), ("segment", "single", 32)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few dozen synthetic images per data set and one epoch of training for each task."""
    root = tmp_path_factory.mktemp("e2e")
    assert cli(["synth", "--out", str(root / "single"), "--count", "30", "--seed", "1"]) == 0
    assert (
        cli(["synth", "--out", str(root / "scenes"), "--count", "30", "--seed", "2", "--max-objects", "3"])
        == 0
    )
    for task, data, size in TASKS:
        args = [
            "train",
            task,
            "--data",
            str(root / data),
            "--run",
            str(root / f"run-{task}"),
            "--size",
            str(size),
        ]
        assert cli([*args, *SMOKE]) == 0
    return root


@pytest.fixture(scope="module")
def exported(runs: Path) -> Path:
    """Each task's run exported as `tiny-TASK` into one model repository."""
    for task, _, _ in TASKS:
        export = ["export", "--run", str(runs / f"run-{task}"), "--name", f"tiny-{task}"]
        assert cli([*export, "--models-dir", str(runs / "models")]) == 0
    return runs / "models"


@pytest.fixture(scope="module")
def served(exported: Path, start_server: ServerFactory) -> LiveServer:
    defaults = {task: f"tiny-{task}" for task, _, _ in TASKS}
    return start_server(exported, default_models=json.dumps(defaults))


def _open(path: Path) -> tuple[onnx.ModelProto, object, ort.InferenceSession]:
    """Open a model file as the service does: contract, tensor shapes and digest checked."""
    model = open_model(path, plan_execution("cpu", cores=1, threads=1, workers=1))
    assert model.sha256 is not None, "the exporter signs every file"
    return onnx.load(path), model.metadata, model.session


@pytest.mark.parametrize(("task", "data", "size"), TASKS)
def test_train_export_and_serve_contract(task: str, data: str, size: int, runs: Path, exported: Path) -> None:
    run = runs / f"run-{task}"
    for artefact in ("model.keras", "metrics.json", "curves.png", "samples.png", "augment.png"):
        assert (run / artefact).is_file()
    target = exported / f"tiny-{task}" / "1"
    assert (target / "README.md").read_text().startswith(f"# tiny-{task} (version 1)")
    _, metadata, session = _open(target / "model.onnx")
    assert (metadata.task, metadata.name, metadata.version) == (task, f"tiny-{task}", 1)
    assert metadata.labels == (("pet", "background", "border") if task == "segment" else SHAPES)
    images = np.random.default_rng(0).uniform(0, 255, (2, size, size, 3)).astype(np.float32)
    names = list(metadata.outputs.values())
    outputs = dict(zip(metadata.outputs, session.run(names, {"image": images}), strict=True))
    if task == "detect":
        assert outputs["boxes"].shape[0] == 2
        assert outputs["boxes"].shape[2] == 4
        assert ((outputs["boxes"] >= 0) & (outputs["boxes"] <= 1)).all()
        np.testing.assert_allclose(outputs["class_probabilities"].sum(-1), 1.0, atol=1e-4)
    else:
        np.testing.assert_allclose(outputs["probabilities"].sum(-1), 1.0, atol=1e-4)


def test_export_int8_classifier_records_accuracy_change(runs: Path) -> None:
    args = ["export", "--run", str(runs / "run-classify"), "--name", "tiny-int8", "--quantize"]
    # A repository of its own: the served one holds the three tasks' defaults only.
    assert cli([*args, "--models-dir", str(runs / "int8")]) == 0
    proto, metadata, _ = _open(runs / "int8" / "tiny-int8" / "1" / "model.onnx")
    assert metadata.metrics["accuracy_change"] == pytest.approx(
        metadata.metrics["accuracy"] - metadata.metrics["fp32_accuracy"]
    )
    ops = [node.op_type for node in proto.graph.node]
    assert "QuantizeLinear" in ops
    assert "Softmax" in ops
    # The first conv reads float pixels and float weights; every later one reads dequantised int8 weights.
    convs = [node for node in proto.graph.node if node.op_type == "Conv"]
    dequantised = {node.output[0] for node in proto.graph.node if node.op_type == "DequantizeLinear"}
    assert [conv.input[1] in dequantised for conv in convs] == [False] + [True] * (len(convs) - 1)


def kept_as_the_source(source_run: Path, run: Path, count: int) -> list[bool]:
    """For each of the first `count` layers with weights: whether `run` ends with `source_run`'s weights."""
    source = keras.models.load_model(source_run / "model.keras", compile=False)
    trained = keras.models.load_model(run / "model.keras", compile=False)
    pairs = list(zip(weighted_layers(source), weighted_layers(trained), strict=False))[:count]
    return [
        all(np.array_equal(a, b) for a, b in zip(src.get_weights(), dst.get_weights(), strict=True))
        for src, dst in pairs
    ]


def test_init_from_copies_the_encoder_and_freeze_keeps_its_first_layers(runs: Path) -> None:
    source_run, run = runs / "run-segment", runs / "run-transfer"
    args = ["train", "classify", "--data", str(runs / "single"), "--run", str(run), "--size", "32"]
    transfer = ["--arch", "unet_encoder", "--init-from", str(source_run), "--freeze", "4"]
    assert cli([*args, *transfer, *SMOKE]) == 0
    assert kept_as_the_source(source_run, run, 6) == [True, True, True, True, False, False]


def test_a_localiser_starts_from_the_segmenters_whole_encoder(runs: Path) -> None:
    source_run, run = runs / "run-segment", runs / "run-localize"
    args = ["train", "detect", "--data", str(runs / "single"), "--run", str(run), "--size", "32"]
    transfer = ["--arch", "encoder_localize", "--init-from", str(source_run), "--freeze", "16"]
    assert cli([*args, *transfer, *SMOKE]) == 0
    # Eight conv + BatchNorm pairs: the U-Net encoder, copied and kept.
    assert kept_as_the_source(source_run, run, 16) == [True] * 16


def scene_jpeg() -> bytes:
    return encode(Image.new("RGB", (120, 90), (40, 120, 200)), "JPEG")


def test_all_trained_models_load(served: LiveServer) -> None:
    body = served.client.get("/models").json()
    assert body["failures"] == []
    assert {m["name"]: m["default_for"] for m in body["models"]} == {
        f"tiny-{task}": task for task, _, _ in TASKS
    }


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
