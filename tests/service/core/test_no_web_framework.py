"""The engine imports no web framework: every module of service.core (and the observability it records into)
loads, and runs a model, without FastAPI or Starlette."""

from __future__ import annotations

from pathlib import Path

from probes import packages_imported_by

PROBE = """
import asyncio, importlib, io, pkgutil, sys
from pathlib import Path
import service.core, service.observability
for package in (service.core, service.observability):
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        importlib.import_module(module.name)
from PIL import Image
from service.core.engine import Engine, EngineConfig
from service.core.intake import RequestLimits
from service.api.options import ClassifyOptions
from service.core.tasks.classify import CLASSIFY

async def main():
    limits = RequestLimits(
        max_images=4, max_image_bytes=1 << 20, max_pixels=1 << 20, max_request_pixels=1 << 22
    )
    engine = Engine(EngineConfig(models_dir=Path(sys.argv[1]), limits=limits, cores=1))
    await engine.load()
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (255, 0, 0)).save(buffer, "PNG")
    answer = await engine.run(CLASSIFY, [buffer.getvalue()], ClassifyOptions(model="colours"))
    assert answer.images[0].predictions[0].label == "red", answer
    await engine.close()

asyncio.run(main())
"""


def test_the_engine_runs_without_a_web_framework(test_models_dir: Path) -> None:
    imported = packages_imported_by(PROBE, str(test_models_dir))
    assert {"service", "onnxruntime", "pydantic"} <= imported
    assert imported & {"fastapi", "starlette"} == set()
