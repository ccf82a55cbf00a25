"""Every `--arch` leaves its run: each trains at its smallest size, then a fresh process that never built it
exports, evaluates and asks it for a prediction, and the exported model answers its task route on a live
server. test_backbones.py walks the keras.applications backbones the same way."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from conftest import ServerFactory
from photos import write_photo_folders
from PIL import Image
from training_processes import run_in_a_child

from training.architectures import ARCHITECTURES, Architecture

pytestmark = pytest.mark.slow

WALKED = [arch for arch in ARCHITECTURES if not arch.backbone]
CLASSES = ("astronaut", "coffee", "rocket")
# One epoch on a few dozen images proves the plumbing, not a model: --allow-useless keeps the exit 0.
SMOKE = ["--epochs", "1", "--batch", "8", "--allow-useless"]
ROUTES = {"classify": "/classify", "detect": "/detect", "segment": "/segment/json"}
CLASSIFIERS = [arch for arch in WALKED if arch.task == "classify"]
# Global pooling then dense give class activation maps (training/cam.py); LeNet-5 and course_cifar flatten.
EXPLAINING = {"small_cnn", "resnet34", "unet_encoder"}
RUN_PREDICTED = "resnet34"
# `visualize` draws with the function the export draws each classifier's card with: one head of each kind,
# ResNet-34's custom layer loaded in a fresh process and LeNet-5's flattening head, which has no CAM.
VISUALIZED = {"resnet34", "lenet5"}


def data_for(arch: Architecture, root: Path) -> Path:
    """Photos in a folder per class for classifiers, one shape per scene for localisers and segmenters,
    scenes of up to three for grid detectors."""
    if arch.task == "classify":
        return root / "photos"
    return root / ("scenes" if arch.task == "detect" and not arch.one_object else "single")


def training(arch: Architecture, root: Path) -> list[str]:
    """One epoch of `arch` at its smallest size, into the run directory named after it."""
    size = max(arch.min_size, arch.multiple_of)
    data, run = data_for(arch, root), root / arch.name
    return [
        "train",
        arch.task,
        "--data",
        str(data),
        "--run",
        str(run),
        "--arch",
        arch.name,
        "--size",
        str(size),
        *SMOKE,
    ]


def predicted_from(arch: Architecture, root: Path) -> Path:
    """The exported file; for ResNet-34 its run, so that `predict --model RUN` loads a custom layer in a
    process that never built it. Only one: predicting from a run exports it again, as long as its export."""
    if arch.name == RUN_PREDICTED:
        return root / arch.name
    return root / "models" / arch.name / "1" / "model.onnx"


@pytest.fixture(scope="module")
def walked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("catalogue")
    write_photo_folders(root / "photos", per_class=6, classes=CLASSES)
    synth = ["synth", "--count", "24", "--seed", "3"]
    run_in_a_child(
        [*synth, "--out", str(root / "single")],
        [*synth, "--out", str(root / "scenes"), "--max-objects", "3"],
        *(training(arch, root) for arch in WALKED),
    )
    photo = str(sorted((root / "photos").rglob("*.jpg"))[0])
    leaving = [
        command
        for arch in WALKED
        for command in (
            [
                "export",
                "--run",
                str(root / arch.name),
                "--name",
                arch.name,
                "--models-dir",
                str(root / "models"),
            ],
            ["evaluate", "--run", str(root / arch.name)],
            ["predict", photo, "--model", str(predicted_from(arch, root))],
        )
    ]
    leaving += [
        [
            "visualize",
            "--run",
            str(root / arch.name),
            "--image",
            photo,
            "--out",
            str(root / "seen" / arch.name),
        ]
        for arch in CLASSIFIERS
        if arch.name in VISUALIZED
    ]
    run_in_a_child(*leaving)
    return root


def test_the_walk_and_the_backbones_cover_the_catalogue() -> None:
    walked = {arch.name for arch in WALKED}
    backbones = {arch.name for arch in ARCHITECTURES if arch.backbone}
    assert walked | backbones == {arch.name for arch in ARCHITECTURES}
    assert {"resnet34", "course_cifar", "localize", "encoder_localize", "fcn"} <= walked
    assert {arch.name for arch in CLASSIFIERS} >= VISUALIZED


@pytest.mark.parametrize("arch", WALKED, ids=[arch.name for arch in WALKED])
def test_each_architecture_answers_its_task_route(
    arch: Architecture, walked: Path, start_server: ServerFactory
) -> None:
    assert (walked / "models" / arch.name / "1" / "model.onnx").is_file()
    server = start_server(walked / "models", default_models="{}")
    photo = sorted((walked / "photos").rglob("*.jpg"))[0]
    response = server.client.post(
        f"{ROUTES[arch.task]}?model={arch.name}", files={"image": photo.read_bytes()}
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["model"]["name"] == arch.name
    assert len(answer["results"]) == 1
    # The export measured its drift reference on the run's held-out split, and the service judges by it.
    assert isinstance(answer["results"][0]["unfamiliar"], bool)
    reference = server.client.get(f"/models/{arch.name}/monitor").json()["reference"]
    assert reference["source"].startswith("held-out split of ")
    assert reference["images"] >= 1
    version = walked / "models" / arch.name / "1"
    assert "![drift reference](reference.png)" in (version / "README.md").read_text()
    assert Image.open(version / "reference.png").format == "PNG"


@pytest.mark.parametrize("arch", CLASSIFIERS, ids=[arch.name for arch in CLASSIFIERS])
def test_each_classifier_explains_when_its_head_allows_and_shows_what_it_sees(
    arch: Architecture, walked: Path, start_server: ServerFactory
) -> None:
    server = start_server(walked / "models", default_models="{}")
    photo = sorted((walked / "photos").rglob("*.jpg"))[0]
    response = server.client.post(f"/explain?model={arch.name}", files={"image": photo.read_bytes()})
    explains = arch.name in EXPLAINING
    if explains:
        assert response.status_code == 200, response.text
        assert Image.open(io.BytesIO(response.content)).size == Image.open(photo).size
    else:
        assert (response.status_code, response.json()["error"]["code"]) == (422, "cannot_explain")
    version = walked / "models" / arch.name / "1"
    card = (version / "README.md").read_text()
    assert ("![class activation map](cam.png)" in card) is explains
    seen = [walked / "seen" / arch.name] if arch.name in VISUALIZED else []
    for pictures in (version, *seen):
        assert Image.open(pictures / "filters.png").format == "PNG"
        assert Image.open(pictures / "feature-maps.png").format == "PNG"
        assert (pictures / "cam.png").is_file() is explains
