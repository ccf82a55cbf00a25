"""The ASGI app: `uvicorn service.app:app` serves the model repository named by `VISION_MODELS_DIR`."""

from __future__ import annotations

from service.http.app import create_app

app = create_app()

__all__ = ["app", "create_app"]
