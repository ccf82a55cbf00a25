"""The service must never import TensorFlow: not on import, not while serving a request."""

from __future__ import annotations

from pathlib import Path

from probes import packages_imported_by

PROBE = """
import asyncio, io, sys
import httpx
from PIL import Image
from service.app import create_app
from service.settings import Settings

async def main():
    app = create_app(Settings(models_dir=sys.argv[1], default_models={"classify": "colours"}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://probe") as client:
            while (await client.get("/healthz/ready")).status_code != 200:
                await asyncio.sleep(0.05)
            buffer = io.BytesIO()
            Image.new("RGB", (8, 8), (255, 0, 0)).save(buffer, "PNG")
            response = await client.post("/classify", files={"image": ("a.png", buffer.getvalue())})
            assert response.json()["results"][0]["predictions"][0]["label"] == "red", response.text

asyncio.run(main())
"""


def test_serving_a_request_never_imports_tensorflow(test_models_dir: Path) -> None:
    imported = packages_imported_by(PROBE, str(test_models_dir))
    assert "service" in imported
    assert imported & {"tensorflow", "keras", "tf2onnx"} == set()
