"""The KServe peer: the bundled ONNX files as `kserve.Model`s behind KServe's own Python `ModelServer`, the
server a KServe InferenceService with a custom predictor runs; started by `python -m benchmarks.peer_kserve
PORT` inside .venv-kserve.

A request is KServe's V1 predict, as its documentation sends images: `POST /v1/models/<task>:predict` with
`{"instances": [{"image_bytes": {"b64": ...}}]}` (benchmarks.wrk.kserve_v1 builds it). Its V2 binary
extension would carry the JPEG without base64, but KServe 0.21 decodes every BYTES tensor as UTF-8 and refuses
a JPEG. The ModelServer has no batching of its own (KServe batches in its Go agent, a sidecar outside
Python), so each request runs alone. The per-image work is benchmarks/peer_models.py, shared by every peer.
"""

from __future__ import annotations

import base64
import io
import sys
from typing import Any

from kserve import Model, ModelServer
from PIL import Image

from benchmarks import peer_models


class TaskModel(Model):
    """One task's model: `predict` decodes each instance's image and answers its predictions."""

    def __init__(self, task: str) -> None:
        super().__init__(task)
        self.task = task
        self.model: peer_models.Model | None = None

    def load(self) -> bool:
        self.model = peer_models.Model(peer_models.MODELS[self.task])
        self.ready = True
        return self.ready

    def predict(self, payload: dict[str, Any], headers: dict[str, str] | None = None) -> dict[str, Any]:
        uploads = [base64.b64decode(instance["image_bytes"]["b64"]) for instance in payload["instances"]]
        images = [Image.open(io.BytesIO(upload)) for upload in uploads]
        return {"predictions": peer_models.ANSWERS[self.task](self.model, images)}


def main(port: int) -> None:
    models: list[Any] = []
    for task in peer_models.MODELS:
        model = TaskModel(task)
        model.load()
        models.append(model)
    ModelServer(http_port=port, grpc_port=port + 10, enable_grpc=False, workers=1).start(models)


if __name__ == "__main__":
    main(int(sys.argv[1]))
