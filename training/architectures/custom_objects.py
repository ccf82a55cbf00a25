"""Importing this registers every custom layer and loss a saved `model.keras` names, so that
`keras.models.load_model` can rebuild any run's model.

Keras 3 rebuilds registered classes only; on loading it imports no module outside Keras itself (a safety
rule), so a process that never built a model must import this first.
"""

from training.architectures import applications, localize, resnet, yolo

__all__ = ["applications", "localize", "resnet", "yolo"]
