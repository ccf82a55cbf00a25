"""Errors the command line answers in one line; free of TensorFlow, so it can catch them early."""

from __future__ import annotations


class UserError(Exception):
    """A mistake on the command line, said in one line."""


class WeightsError(UserError):
    """Backbone weights that are not on disk or do not fit, said with where they belong."""


class DatasetError(ValueError):
    """A data set that cannot be read for this task, said in one line for the person who pointed at it."""


class ExportMismatchError(RuntimeError):
    """ONNX Runtime disagrees with Keras on real inputs; nothing was written."""


class UselessModelError(RuntimeError):
    """A run trained to the end whose model is no better than chance, or answers one class for everything."""
