"""The Ray Serve peer: the bundled ONNX files in one deployment whose methods batch with `@serve.batch`, as
Ray Serve's documentation shows; started by `python -m benchmarks.peer_ray PORT` inside .venv-ray.

The per-image work is benchmarks/peer_models.py, shared by every peer.
"""

from __future__ import annotations

import io
import sys
import time
from typing import Any

import ray
from PIL import Image
from ray import serve
from starlette.requests import Request
from starlette.responses import JSONResponse

from benchmarks import peer_models
from benchmarks.peer_models import MAX_BATCH


@serve.deployment(ray_actor_options={"num_cpus": 0}, max_ongoing_requests=256)
class VisionPeer:
    """POST /classify, /detect or /segment with a multipart `image`; concurrent calls share a batch."""

    def __init__(self) -> None:
        self.models = peer_models.load_models()

    @serve.batch(max_batch_size=MAX_BATCH, batch_wait_timeout_s=0.0)
    async def classify(self, images: list[Image.Image]) -> list[dict[str, Any]]:
        return peer_models.classify(self.models["classify"], images)

    @serve.batch(max_batch_size=MAX_BATCH, batch_wait_timeout_s=0.0)
    async def detect(self, images: list[Image.Image]) -> list[dict[str, Any]]:
        return peer_models.detect(self.models["detect"], images)

    @serve.batch(max_batch_size=MAX_BATCH, batch_wait_timeout_s=0.0)
    async def segment(self, images: list[Image.Image]) -> list[dict[str, Any]]:
        return peer_models.segment(self.models["segment"], images)

    async def __call__(self, request: Request) -> JSONResponse:
        if request.method == "GET":
            return JSONResponse({"ready": True})  # the runner's readiness probe: the app itself answers
        task = request.url.path.strip("/")
        if task not in peer_models.ANSWERS:
            return JSONResponse({"error": "not found"}, status_code=404)
        form = await request.form()
        image = Image.open(io.BytesIO(await form["image"].read()))
        return JSONResponse(await getattr(self, task)(image))


def main(port: int) -> None:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    serve.run(VisionPeer.bind(), route_prefix="/")
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main(int(sys.argv[1]))
