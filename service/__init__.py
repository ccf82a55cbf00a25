"""vision-service: classify, detect and segment images over HTTP with self-describing ONNX models."""

__version__ = "0.1.0"
