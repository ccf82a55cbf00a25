"""`python -m training sign --reference`: the drift reference measured the service's way, written into a model
file that still loads; too few or no images are one line."""

from __future__ import annotations

from pathlib import Path

import onnx_models
import pytest
from conftest import encode, solid

from service.core.model import open_model
from service.core.reference import Histogram, Mix
from service.core.runtime import plan_execution
from training.cli import MIN_REFERENCE_IMAGES, main

PLAN = plan_execution("cpu", cores=1, threads=1, workers=1)
COLOURS = ((255, 0, 0), (0, 255, 0), (0, 0, 255))


def colour_folder(root: Path, count: int) -> Path:
    """`count` squares of pure red, green and blue, and one file that is not an image."""
    root.mkdir()
    for index in range(count):
        side = 16 + index % 5
        (root / f"{index}.png").write_bytes(encode(solid(COLOURS[index % 3], (side, side)), "PNG"))
    (root / "broken.png").write_bytes(b"not a png")
    return root


def test_sign_measures_the_reference_on_a_folder_and_signs_the_file_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = onnx_models.colour_classifier(tmp_path / "models")
    images = colour_folder(tmp_path / "held-out", 60)
    assert main(["sign", str(path), "--reference", str(images)]) == 0
    printed = capsys.readouterr()
    assert f"{path}: reference of 60 images, unfamiliar under confidence" in printed.out
    assert f"{path}: sha256 " in printed.out

    model = open_model(path, PLAN)  # the digest matches the new bytes
    reference = model.metadata.reference
    assert reference is not None
    assert reference.images == 60
    assert reference.source == str(images)
    assert reference.signals["class"] == Mix(counts=(20.0, 20.0, 20.0))
    sides = reference.signals["megapixels"]
    assert isinstance(sides, Histogram)
    assert sides.cuts[0] == 16 * 16 / 1e6
    # Pure colours are answered with near certainty by the colour classifier.
    assert reference.low_confidence > 0.99


@pytest.mark.parametrize(
    ("count", "message"),
    [
        (MIN_REFERENCE_IMAGES - 2, f"at least {MIN_REFERENCE_IMAGES} are needed"),
        (None, "no such folder"),
    ],
)
def test_too_few_images_or_no_folder_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], count: int | None, message: str
) -> None:
    path = onnx_models.colour_classifier(tmp_path / "models")
    before = path.read_bytes()
    folder = tmp_path / "held-out"
    if count is not None:
        colour_folder(folder, count)
    assert main(["sign", str(path), "--reference", str(folder)]) == 2
    error = capsys.readouterr().err
    assert error.startswith(f"sign: --reference {folder}: ")
    assert message in error
    assert len(error.strip().splitlines()) == 1
    assert path.read_bytes() == before
