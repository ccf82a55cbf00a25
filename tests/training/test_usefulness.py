"""A model of no use ends loudly: at chance, the same answer for every image, or one class for everything is
a warning in the console, in metrics.json and on the card, and `train` exits 3 unless told otherwise."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.data.arrays import ArraySet
from training.evaluate.usefulness import problems

LABELS = ("cat", "dog", "fox")
TRIMAP = ("pet", "background", "border")


def _classified(truth: list[int], predicted: list[int]) -> list[str]:
    probabilities = np.eye(3, dtype=np.float32)[predicted] * 0.8 + 0.05
    accuracy = float(np.mean(np.array(truth) == np.array(predicted)))
    data = ArraySet(images=np.zeros((len(truth), 8, 8, 3), np.float32), labels=np.array(truth))
    return problems("classify", {"probabilities": probabilities}, data, LABELS, {"accuracy": accuracy})


def test_a_classifier_that_learnt_says_nothing() -> None:
    assert _classified([0, 1, 2, 0, 1, 2], [0, 1, 2, 0, 1, 1]) == []


def test_a_classifier_near_chance_is_named_with_the_chance_it_is_held_to() -> None:
    found = _classified([0, 0, 0, 1, 1, 2, 2, 2, 2, 2], [0, 1, 1, 0, 2, 2, 0, 1, 2, 1])
    chance = "chance (0.500, what always answering the most common class scores)"
    assert found == [f"its held-out accuracy 0.300 is not 5 points above {chance}"]


def test_the_same_answer_for_every_image_is_named_once() -> None:
    found = _classified([0, 1, 2, 0], [2, 2, 2, 2])
    assert found[0] == "it gives every held-out image the same probabilities"
    assert len(found) == 2  # and at chance: 0.25 against 0.5


def test_one_class_for_everything_but_not_when_the_truth_has_one_class() -> None:
    probabilities = np.array([[0.9, 0.1, 0.0], [0.6, 0.3, 0.1]], np.float32)
    two = ArraySet(images=np.zeros((2, 8, 8, 3), np.float32), labels=np.array([0, 1]))
    one = ArraySet(images=np.zeros((2, 8, 8, 3), np.float32), labels=np.array([0, 0]))
    output = {"probabilities": probabilities}
    assert "it answers 'cat' for every held-out image" in problems(
        "classify", output, two, LABELS, {"accuracy": 0.5}
    )
    assert problems("classify", output, one, LABELS, {"accuracy": 1.0}) == []


def test_a_segmenter_that_labels_every_pixel_background() -> None:
    masks = np.zeros((2, 4, 4), int)
    masks[:, 1:3, 1:3] = 1
    scores = np.zeros((2, 4, 4, 3), np.float32)
    scores[..., 1] = 1.0
    data = ArraySet(images=np.zeros((2, 4, 4, 3), np.float32), labels=np.zeros(2, int), masks=masks)
    assert problems("segment", {"probabilities": scores}, data, TRIMAP, {}) == [
        "it answers 'background' for every held-out pixel"
    ]


def test_a_detector_whose_best_box_is_always_one_class() -> None:
    data = ArraySet(
        images=np.zeros((2, 8, 8, 3), np.float32),
        labels=np.zeros(2, int),
        boxes=np.zeros((2, 1, 4), np.float32),
        box_classes=np.array([[0], [1]]),
    )
    outputs = {
        "boxes": np.zeros((2, 2, 4), np.float32),
        "iou": np.array([[0.9, 0.1], [0.2, 0.8]], np.float32),
        "class_probabilities": np.array([[[0.7, 0.3], [0.1, 0.9]], [[0.2, 0.8], [0.6, 0.4]]], np.float32),
    }
    assert problems("detect", outputs, data, ("circle", "square"), {}) == [
        "it answers 'circle' for every held-out image"
    ]
    outputs["iou"] = np.array([[0.9, 0.1], [0.9, 0.1]], np.float32)
    assert problems("detect", outputs, data, ("circle", "square"), {}) == []


@pytest.mark.slow
def test_a_run_that_learnt_nothing_exits_3_with_its_reasons_unless_allowed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("tensorflow")
    from training.cli import USELESS_MODEL
    from training.cli import main as cli

    # Two classes of the same picture: whatever the weights, every held-out image gets the same answer.
    for name in ("left", "right"):
        (tmp_path / "data" / name).mkdir(parents=True)
        for index in range(8):
            Image.new("RGB", (16, 16), (120, 80, 40)).save(tmp_path / "data" / name / f"{index}.png")
    train = ["train", "classify", "--data", str(tmp_path / "data"), "--size", "8", "--epochs", "1"]
    assert cli([*train, "--run", str(tmp_path / "run")]) == USELESS_MODEL
    printed = capsys.readouterr()
    assert (
        "WARNING: this model is of no use: it gives every held-out image the same probabilities"
        in printed.out
    )
    assert printed.err.startswith(f"train: the model in {tmp_path / 'run'} is of no use (it gives every")
    warnings = json.loads((tmp_path / "run" / "metrics.json").read_text())["warnings"]
    assert warnings[0] == "it gives every held-out image the same probabilities"

    assert cli([*train, "--run", str(tmp_path / "allowed"), "--allow-useless"]) == 0
    assert (
        cli(
            ["export", "--run", str(tmp_path / "allowed"), "--name", "useless", "--models-dir", str(tmp_path)]
        )
        == 0
    )
    card = (tmp_path / "useless" / "1" / "README.md").read_text()
    assert (
        "**Warning: this model is of no use.**\n- it gives every held-out image the same probabilities"
        in card
    )
