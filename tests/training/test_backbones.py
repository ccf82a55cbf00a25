"""Every keras.applications backbone `--arch` offers trains, exports, evaluates, predicts and serves; the
two-phase recipe freezes, then fine-tunes the top of the base; `--weights imagenet` reads Keras's cache, never
the net."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import ServerFactory
from photos import write_photo_folders
from training_processes import run_in_a_child

pytest.importorskip("tensorflow")

import keras
from keras.src.legacy.saving import legacy_h5_format

from training.architectures import ARCHITECTURES
from training.architectures.applications import BACKBONES, base_of
from training.architectures.weights import imagenet_file
from training.cli import main as cli
from training.train import weighted_layers

pytestmark = pytest.mark.slow
# One epoch on a few dozen images proves the plumbing, not a model: --allow-useless keeps the exit 0.
SMOKE = ["--epochs", "1", "--batch", "8", "--allow-useless"]

BACKBONE_NAMES = [arch.name for arch in ARCHITECTURES if arch.backbone]
# At 32 px EfficientNetB0's last stages are 1x1: re-estimated from batches of 8, some BatchNorm variances are
# near zero, and ONNX Runtime and Keras then differed by up to 1.8e-4 on a probability, over the export
# check's fixed bound of the time, 1e-4 (one run in four). At 64 px three runs differed by 2e-6 to 3e-6, so
# this backbone's case stays well-conditioned; ResNet50 keeps 32 px, the case the check's noise bound covers.
SIZES = {arch.name: arch.min_size for arch in ARCHITECTURES if arch.backbone} | {"efficientnet_b0": 64}
CLASSES = ("astronaut", "coffee", "rocket")
# Each backbone's training and export in one process peaked at 1.0 to 2.5 GiB, so two `make test` runs fit
# on 24 GiB beside each other; when tf2onnx's dropped graph copies piled up, ResNet50's took 10.6 GiB.
MAX_PEAK_BYTES = 5 * 2**30


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_photo_folders(tmp_path_factory.mktemp("photos"), per_class=8, classes=CLASSES)


def train(photos: Path, run: Path, arch: str, *options: str) -> None:
    args = ["train", "classify", "--data", str(photos), "--run", str(run), "--arch", arch]
    assert cli([*args, "--size", str(SIZES[arch]), *SMOKE, *options]) == 0


@pytest.fixture(scope="module")
def exported(photos: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    """One epoch of each backbone from scratch, exported into one model repository, evaluated and asked
    for a prediction; with each one's peak resident bytes. A process per backbone: six trained in the test
    process held 10 GB.

    Keras's steps run eagerly: tracing DenseNet121's train step into a graph took 107 of its 158 s of
    training here, and the walk then took 18 min. The backbone head's own layers train traced below
    (two phases, the Keras cache), and the catalogue's architectures all train traced. The prediction
    reads the exported file: `predict --model RUN` exports the run once more, which the export above did.
    """
    root = tmp_path_factory.mktemp("backbones")
    peaks = {}
    for arch in BACKBONE_NAMES:
        training = ["train", "classify", "--data", str(photos), "--run", str(root / arch), "--arch", arch]
        training += ["--size", str(SIZES[arch]), *SMOKE]
        export = ["export", "--run", str(root / arch), "--name", arch, "--models-dir", str(root / "models")]
        evaluate = ["evaluate", "--run", str(root / arch)]
        model_file = root / "models" / arch / "1" / "model.onnx"
        predict = ["predict", str(sorted(photos.rglob("*.jpg"))[0]), "--model", str(model_file)]
        peaks[arch] = run_in_a_child(training, export, evaluate, predict, eager=True)
    return root, peaks


def test_the_list_covers_every_backbone() -> None:
    assert set(BACKBONE_NAMES) == set(BACKBONES)
    assert "densenet121" in BACKBONE_NAMES


@pytest.mark.parametrize("arch", BACKBONE_NAMES)
def test_each_backbone_trains_exports_and_serves(
    arch: str, exported: tuple[Path, dict[str, int]], photos: Path, start_server: ServerFactory
) -> None:
    root, _ = exported
    server = start_server(root / "models", default_models="{}")
    # One of the photos it trained on: the session's temporary folder also holds other tests' broken files.
    photo = sorted(photos.rglob("*.jpg"))[0]
    response = server.client.post(f"/classify?model={arch}", files={"image": photo.read_bytes()})
    assert response.status_code == 200, response.text
    predictions = response.json()["results"][0]["predictions"]
    assert {p["label"] for p in predictions} <= set(CLASSES)
    assert sum(p["probability"] for p in predictions) == pytest.approx(1.0, abs=1e-3)
    # Global average pooling then dense: the base's feature maps on the card, and a heat map served.
    explained = server.client.post(f"/explain/json?model={arch}", files={"image": photo.read_bytes()})
    assert explained.status_code == 200, explained.text
    card = (root / "models" / arch / "1" / "README.md").read_text()
    assert "![feature maps](feature-maps.png)" in card
    assert "![class activation map](cam.png)" in card


def test_training_and_export_stay_in_bounded_memory(exported: tuple[Path, dict[str, int]]) -> None:
    _, peaks = exported
    over = {arch: f"{peak / 2**30:.1f} GiB" for arch, peak in peaks.items() if peak > MAX_PEAK_BYTES}
    assert not over, f"over {MAX_PEAK_BYTES / 2**30:.0f} GiB: {over}"


def base_weights(arch: str) -> keras.Model:
    constructor, _ = BACKBONES[arch]
    size = SIZES[arch]
    return constructor(include_top=False, weights=None, input_shape=(size, size, 3), name="base")


def same(a: keras.layers.Layer, b: keras.layers.Layer) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a.get_weights(), b.get_weights(), strict=True))


def test_two_phases_freeze_the_base_then_fine_tune_its_top(photos: Path, tmp_path: Path) -> None:
    source = base_weights("mobilenet_v2")
    source.save_weights(tmp_path / "base.weights.h5")
    run = tmp_path / "run"
    train(
        photos,
        run,
        "mobilenet_v2",
        "--weights",
        str(tmp_path / "base.weights.h5"),
        "--fine-tune-epochs",
        "1",
        "--unfreeze",
        "5",
    )

    info = json.loads((run / "run.json").read_text())
    history = json.loads((run / "history.json").read_text())
    assert info["phase_starts"] == [1]
    assert len(history["loss"]) == len(history["val_loss"]) == 2
    assert (run / "curves.png").stat().st_size > 1000
    base = base_of(keras.models.load_model(run / "model.keras", compile=False))
    assert base is not None
    pairs = list(zip(weighted_layers(source), weighted_layers(base), strict=True))
    assert all(same(src, dst) for src, dst in pairs[:-5]), "below the top 5, the base is as the file had it"
    assert not any(same(src, dst) for src, dst in pairs[-5:]), "the top 5 layers were fine-tuned"
    export = ["export", "--run", str(run), "--name", "tuned", "--models-dir", str(tmp_path / "models")]
    assert cli(export) == 0
    assert "Two phases" in (tmp_path / "models" / "tuned" / "1" / "README.md").read_text()


def test_imagenet_weights_are_read_from_the_keras_cache(
    photos: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    source = base_weights("mobilenet")
    cached = tmp_path / "keras" / "models" / imagenet_file("mobilenet", SIZES["mobilenet"])
    cached.parent.mkdir(parents=True)
    with h5py.File(cached, "w") as file:  # the legacy format keras.applications publishes
        legacy_h5_format.save_weights_to_hdf5_group(file, source)
    run = tmp_path / "run"
    train(photos, run, "mobilenet", "--weights", "imagenet", "--fine-tune-epochs", "1", "--unfreeze", "2")
    base = base_of(keras.models.load_model(run / "model.keras", compile=False))
    assert base is not None
    assert same(weighted_layers(source)[0], weighted_layers(base)[0])
