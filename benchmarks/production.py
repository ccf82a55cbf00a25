"""Models the benchmarks train for themselves with `python -m training`, so they carry the same contract as
any model the service serves: a production-sized classifier, and Keras stand-ins for the naive service where
no `make models` run is on disk. Weights do not change speed, so each trains for one epoch on a small
synthetic set (a model of no use, which `--allow-useless` lets through); each is built once and kept.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger("benchmarks.production")

NAME = "mobilenet-v2"
ARCH = "mobilenet_v2"
SIZE = 224


@dataclass(frozen=True)
class Recipe:
    """What to train: task, architecture, square input size and objects per synthetic image."""

    task: str
    arch: str
    size: int
    max_objects: int = 1


def train(folder: Path, recipe: Recipe) -> Path:
    """The run directory (with `model.keras`) of one epoch of `recipe` under `folder`; trained on the first
    call."""
    run = folder / "run"
    if (run / "model.keras").exists():
        return run
    data = folder / "data"
    logger.info("training %s (%s at %d px) with python -m training", recipe.task, recipe.arch, recipe.size)
    synth = ["synth", "--out", str(data), "--count", "48", "--seed", "3", "--force"]
    _training(*synth, "--max-objects", str(recipe.max_objects))
    _training(
        "train", recipe.task, "--data", str(data), "--run", str(run), "--arch", recipe.arch,
        "--size", str(recipe.size), "--epochs", "1", "--batch", "16", "--allow-useless",
    )  # fmt: skip
    return run


def build(folder: Path) -> Path:
    """The model repository holding NAME, under `folder`; built on the first call."""
    models = folder / "models"
    if (models / NAME / "1" / "model.onnx").exists():
        return models
    run = train(folder, Recipe("classify", ARCH, SIZE))
    _training("export", "--run", str(run), "--name", NAME, "--models-dir", str(models), "--force")
    return models


def _training(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", "training", *args], capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"python -m training {args[0]} failed: {done.stderr.strip()[-2000:]}")
