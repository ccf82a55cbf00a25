"""`predict`: the service's own JSON for local images, from an exported model file or a run, with no server.

The model goes through the engine `/classify`, `/detect` and `/segment` call, in a temporary repository, so
the answer is the one the service would give, options at their defaults.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import onnxruntime as ort

from service.core.contract import ContractError, ModelMetadata, parse_metadata
from service.core.engine import Engine
from service.core.errors import ServiceError
from service.core.tasks.classify import ClassifyOptions
from service.core.tasks.detect import DetectOptions
from service.core.tasks.segment import SegmentOptions
from service.http.schemas import ClassifyResponse, DetectResponse, SegmentResponse
from service.settings import Settings
from training.errors import UserError

RUN_MODEL_NAME = "run"


def predict_files(model: Path, images: Sequence[Path]) -> str:
    """The JSON answer for `images` from `model`: a model.onnx file, or a run directory (exported first)."""
    with tempfile.TemporaryDirectory(prefix="vision-predict-") as tmp:
        repository = Path(tmp, "models")
        if model.is_file():
            metadata = _metadata_of(model)
            (repository / metadata.name / str(metadata.version)).mkdir(parents=True)
            shutil.copyfile(model, repository / metadata.name / str(metadata.version) / "model.onnx")
        else:
            from training.export import export_run

            export_run(model, repository, RUN_MODEL_NAME, 1)
        return asyncio.run(_answer(repository, [path.read_bytes() for path in images]))


def _metadata_of(path: Path) -> ModelMetadata:
    try:
        return parse_metadata(ort.InferenceSession(path).get_modelmeta().custom_metadata_map)
    except (
        ContractError,
        ort.capi.onnxruntime_pybind11_state.Fail,
        ort.capi.onnxruntime_pybind11_state.InvalidProtobuf,
    ) as exc:
        raise UserError(f"{path} is not a model the service can serve: {str(exc).splitlines()[0]}") from None


async def _answer(repository: Path, images: list[bytes]) -> str:
    settings = Settings(
        models_dir=repository, default_models={}, max_images=max(1, len(images)), warmup=False
    )
    engine = Engine(settings.engine_config())
    try:
        await engine.load()
        if engine.failures():
            raise UserError(f"the service refuses this model: {engine.failures()[0].message}")
        task = engine.models()[0].metadata.task
        if task == "classify":
            return ClassifyResponse.of(await engine.classify(images, ClassifyOptions())).model_dump_json(
                indent=2
            )
        if task == "detect":
            return DetectResponse.of(await engine.detect(images, DetectOptions())).model_dump_json(indent=2)
        options = SegmentOptions()
        answer = await engine.segment(images, options)
        return SegmentResponse.of(answer, options.style).model_dump_json(indent=2)
    except ServiceError as exc:
        raise UserError(f"{exc.code}: {exc.message}") from None
    finally:
        await engine.close()
