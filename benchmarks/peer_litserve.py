"""The LitServe peer: one `LitAPI` per task over the bundled ONNX files, each with LitServe's own batching, as
LitServe's documentation shows; started by `python -m benchmarks.peer_litserve PORT` inside .venv-litserve.

A request is POST /classify, /detect or /segment with a multipart `image`, as to this service. The per-image
work is benchmarks/peer_models.py, shared by every peer.
"""

from __future__ import annotations

import io
import sys
from typing import Any

import litserve as ls
from PIL import Image

from benchmarks import peer_models
from benchmarks.peer_models import MAX_BATCH

# How long LitServe's loop waits to fill a batch: its documentation's examples use 0.01 to 0.05 s.
BATCH_TIMEOUT_SECONDS = 0.01


class TaskAPI(ls.LitAPI):
    """One task's route: LitServe decodes the form in its inference worker, batches, runs, unbatches."""

    def __init__(self, task: str) -> None:
        super().__init__(max_batch_size=MAX_BATCH, batch_timeout=BATCH_TIMEOUT_SECONDS, api_path=f"/{task}")
        self.task = task

    def setup(self, device: str) -> None:
        self.model = peer_models.Model(peer_models.MODELS[self.task])

    # Unannotated on purpose: LitServe reads these two signatures, and hands the form over only when the
    # request's annotation is absent (or Starlette's Request), the answer as JSON only when the return's is.
    def decode_request(self, request):  # type: ignore[no-untyped-def]
        upload = request["image"]
        return Image.open(io.BytesIO(upload.file.read()))

    def batch(self, inputs: list[Image.Image]) -> list[Image.Image]:
        return inputs

    def predict(self, images: list[Image.Image]) -> list[dict[str, Any]]:
        return peer_models.ANSWERS[self.task](self.model, images)

    def unbatch(self, output: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return output

    def encode_response(self, output):  # type: ignore[no-untyped-def]
        return output


def main(port: int) -> None:
    apis = [TaskAPI(task) for task in peer_models.MODELS]
    server = ls.LitServer(apis, accelerator="cpu", workers_per_device=1)
    server.run(host="127.0.0.1", port=port, generate_client_file=False, log_level="warning")


if __name__ == "__main__":
    main(int(sys.argv[1]))
