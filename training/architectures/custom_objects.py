"""Every custom layer and loss a saved `model.keras` names, registered, and the one loader of a run's model.

Keras 3 rebuilds registered classes only; on loading it imports no module outside Keras itself (a safety
rule), so a process that never built a model must import this first: `load_run_model` does.
"""

from pathlib import Path

import keras

from training.architectures import applications, localize, resnet, yolo

__all__ = ["applications", "load_run_model", "localize", "resnet", "yolo"]


def load_run_model(run_dir: Path) -> keras.Model:
    """A run's saved model, uncompiled, whatever custom layers its architecture has."""
    return keras.models.load_model(Path(run_dir) / "model.keras", compile=False)
