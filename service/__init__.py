"""vision-service: classify, detect and segment images over HTTP with self-describing ONNX models."""

__version__ = "0.2.0"
