"""`python -m training`: a data set it cannot train on is refused in one line, before TensorFlow loads, and
leaves no run directory behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT
from PIL import Image


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "training", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("data", "task", "fragment"),
    [
        ("absent", "classify", "is not a directory; --data takes one of: 'digits'"),
        ("empty", "classify", "no data set layout found; looked for the Oxford-IIIT Pet layout"),
        ("classes", "segment", "is a folder per class, which has labels only"),
        ("digits", "detect", "the digits data set only supports the classify task"),
    ],
)
def test_data_it_cannot_train_on_is_one_line_and_leaves_nothing(
    tmp_path: Path, data: str, task: str, fragment: str
) -> None:
    (tmp_path / "empty").mkdir()
    for name in ("cats", "dogs"):
        (tmp_path / "classes" / name).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / "classes" / name / "1.png")
    where = data if data == "digits" else str(tmp_path / data)
    finished = run_cli("train", task, "--data", where, "--run", str(tmp_path / "run"))
    assert finished.returncode == 2
    (line,) = finished.stderr.strip().splitlines()
    assert line.startswith("train: ")
    assert fragment in line
    assert not (tmp_path / "run").exists()
    assert "tensorflow" not in finished.stderr.lower()


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--epochs", "0", "argument --epochs: must be at least 1, not 0"),
        ("--size", "0", "argument --size: must be at least 1, not 0"),
        ("--batch", "many", "argument --batch: 'many' is not a whole number"),
    ],
)
def test_counts_below_one_are_refused_before_tensorflow(option: str, value: str, message: str) -> None:
    finished = run_cli("train", "classify", "--data", "digits", "--run", "unused", option, value)
    assert finished.returncode == 2
    assert finished.stderr.strip().splitlines()[-1].endswith(message)
