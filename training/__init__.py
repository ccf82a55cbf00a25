"""Offline training: datasets -> Keras models -> training -> evaluation -> ONNX export (DESIGN.md)."""
