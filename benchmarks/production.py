"""A production-sized model for the benchmarks: MobileNetV2 at 224x224, trained for one epoch on a small
synthetic set and exported, all by `python -m training`, so it carries the same contract as any model the
service serves. Its weights do not change its speed; it is built once and kept.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

logger = logging.getLogger("benchmarks.production")

NAME = "mobilenet-v2"
ARCH = "mobilenet_v2"
SIZE = 224


def build(folder: Path) -> Path:
    """The model repository holding NAME, under `folder`; built on the first call."""
    models = folder / "models"
    if (models / NAME / "1" / "model.onnx").exists():
        return models
    data, run = folder / "data", folder / "run"
    logger.info("building %s (%s at %dx%d) with python -m training", NAME, ARCH, SIZE, SIZE)
    train = ["train", "classify", "--data", str(data), "--run", str(run), "--arch", ARCH, "--size", str(SIZE)]
    steps = [
        ["synth", "--out", str(data), "--count", "48", "--seed", "3"],
        [*train, "--epochs", "1", "--batch", "16"],
        ["export", "--run", str(run), "--name", NAME, "--models-dir", str(models), "--force"],
    ]
    for step in steps:
        subprocess.run([sys.executable, "-m", "training", *step], check=True, capture_output=True)
    return models
