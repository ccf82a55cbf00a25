"""The BentoML peer: the bundled ONNX files behind BentoML's adaptive batching, as its documentation shows.

Runs only inside .venv-peer (`bentoml serve benchmarks.peer_bentoml:VisionPeer`); the per-image work is
benchmarks/peer_models.py, shared by every peer.
"""

from __future__ import annotations

import os
from typing import Any

import bentoml
from PIL import Image

from benchmarks import peer_models
from benchmarks.peer_models import MAX_BATCH

WORKERS = int(os.environ.get("BENCH_PEER_WORKERS", "1"))


@bentoml.service(workers=WORKERS, threads=2)
class VisionPeer:
    """/classify, /detect and /segment over the bundled ONNX files, each with BentoML adaptive batching."""

    def __init__(self) -> None:
        self.models = peer_models.load_models()

    @bentoml.api(batchable=True, max_batch_size=MAX_BATCH, max_latency_ms=30000)
    def classify(self, image: list[Image.Image]) -> list[dict[str, Any]]:
        return peer_models.classify(self.models["classify"], image)

    @bentoml.api(batchable=True, max_batch_size=MAX_BATCH, max_latency_ms=30000)
    def detect(self, image: list[Image.Image]) -> list[dict[str, Any]]:
        return peer_models.detect(self.models["detect"], image)

    @bentoml.api(batchable=True, max_batch_size=MAX_BATCH, max_latency_ms=30000)
    def segment(self, image: list[Image.Image]) -> list[dict[str, Any]]:
        return peer_models.segment(self.models["segment"], image)
