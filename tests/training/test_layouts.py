"""Data sets in any layout behind one call: a folder per class (flat, or train/val/test), the Oxford-IIIT Pet
layout and digits, recognised from the directory, with one-line errors for what cannot be trained on."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from photos import write_photo_folders
from PIL import Image

from training.data.folders import load_folders
from training.data.layouts import LAYOUTS, DatasetError, open_dataset
from training.data.synth import write_dataset

CLASSES = ("astronaut", "chelsea", "coffee")


def write_photo_classes(root: Path, per_class: int, suffix: str = ".jpg") -> None:
    write_photo_folders(root, per_class, classes=CLASSES, suffix=suffix)


def test_a_flat_folder_per_class_set_is_split_by_class_and_seed(tmp_path: Path) -> None:
    write_photo_classes(tmp_path, per_class=10)
    splits = open_dataset(str(tmp_path), "classify", 32, 3, seed=1)
    assert splits.labels == ("astronaut", "chelsea", "coffee")
    assert splits.name == f"folders:{tmp_path.name}"
    assert (len(splits.trainval), len(splits.test)) == (24, 6)
    assert sorted(np.bincount(splits.test.labels).tolist()) == [2, 2, 2]
    assert splits.trainval.images.shape == (24, 32, 32, 3)
    again = load_folders(tmp_path, seed=1).splits["test"]
    other = load_folders(tmp_path, seed=2).splits["test"]
    assert again == load_folders(tmp_path, seed=1).splits["test"]
    assert again != other


def test_train_val_test_folders_are_used_as_they_are(tmp_path: Path) -> None:
    for split, count in (("train", 4), ("val", 2), ("test", 3)):
        write_photo_classes(tmp_path / split, per_class=count, suffix=".png")
    splits = open_dataset(str(tmp_path), "classify", 16, 3, seed=0)
    assert (len(splits.trainval), len(splits.val), len(splits.test)) == (12, 6, 9)  # type: ignore[arg-type]


def test_a_file_that_will_not_decode_is_skipped_and_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_photo_classes(tmp_path, per_class=10)
    broken = tmp_path / "coffee" / "3.jpg"
    broken.write_bytes(broken.read_bytes()[:300])
    with caplog.at_level(logging.WARNING, logger="training.data"):
        splits = open_dataset(str(tmp_path), "classify", 16, 3, seed=0)
    assert splits.skipped == 1
    assert len(splits.trainval) + len(splits.test) == 29
    assert any(str(broken) in record.getMessage() for record in caplog.records)


def test_too_many_undecodable_files_is_an_error(tmp_path: Path) -> None:
    write_photo_classes(tmp_path, per_class=4)
    for path in sorted((tmp_path / "astronaut").iterdir())[:2]:
        path.write_bytes(b"not a photo")
    with pytest.raises(DatasetError, match=r"2 of 12 images cannot be decoded .* at most 10% may be skipped"):
        open_dataset(str(tmp_path), "classify", 16, 3, seed=0)


@pytest.mark.parametrize(
    ("arrange", "task", "message"),
    [
        (lambda root: None, "classify", "no data set layout found; looked for the Oxford-IIIT Pet layout"),
        (
            lambda root: write_photo_classes(root, 3),
            "detect",
            "it trains classify; detect needs boxes or masks",
        ),
        (
            lambda root: (root / "only").mkdir() or Image.new("RGB", (8, 8)).save(root / "only" / "a.png"),
            "classify",
            "needs at least two class folders of images, found only 'only'",
        ),
        (
            lambda root: (
                write_photo_classes(root / "train", 3),
                write_photo_classes(root / "test" / "extra", 1),
            ),
            "classify",
            "class folders ['extra'] are not in train/",
        ),
        (
            lambda root: (write_photo_classes(root, 3), (root / "dog").mkdir()),
            "classify",
            "class folders ['dog'] hold no images",
        ),
    ],
    ids=["no layout", "folders for detect", "one class", "a test class unknown to train", "an empty class"],
)
def test_what_cannot_be_trained_on_is_said_in_one_line(
    tmp_path: Path, arrange, task: str, message: str
) -> None:  # type: ignore[no-untyped-def]
    arrange(tmp_path)
    with pytest.raises(DatasetError) as refused:
        open_dataset(str(tmp_path), task, 16, 3, seed=0)
    assert message in str(refused.value)
    assert "\n" not in str(refused.value)


def test_a_missing_directory_lists_every_layout(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as refused:
        open_dataset(str(tmp_path / "absent"), "classify", 16, 3, seed=0)
    assert all(layout in str(refused.value) for layout in LAYOUTS)


def test_an_oxford_image_that_will_not_decode_is_skipped_and_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_dataset(tmp_path, 20, seed=0, max_objects=1, test_fraction=0.2)
    broken = sorted((tmp_path / "images").glob("*.jpg"))[0]
    broken.write_bytes(b"not a JPEG at all")
    with caplog.at_level(logging.WARNING, logger="training.data"):
        splits = open_dataset(str(tmp_path), "detect", 16, 3, seed=0)
    assert splits.skipped == 1
    assert len(splits.trainval) + len(splits.test) == 19
    assert any(str(broken) in record.getMessage() for record in caplog.records)


def test_the_oxford_layout_and_digits_still_open(tmp_path: Path) -> None:
    write_dataset(tmp_path, 20, seed=0, max_objects=1, test_fraction=0.2)
    oxford = open_dataset(str(tmp_path), "segment", 16, 3, seed=0)
    assert oxford.labels == ("pet", "background", "border")
    assert oxford.trainval.masks is not None
    digits = open_dataset("digits", "classify", 16, 1, seed=0)
    assert digits.labels[0] == "0"
    with pytest.raises(DatasetError, match="digits data set only supports the classify task"):
        open_dataset("digits", "detect", 16, 1, seed=0)
