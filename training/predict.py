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
from tqdm import tqdm

from service.api.options import ClassifyOptions, DetectOptions, SegmentOptions
from service.api.schemas import ClassifyResponse, DetectResponse, SegmentResponse
from service.core.contract import ContractError, ModelMetadata, parse_metadata
from service.core.engine import Answer, Engine
from service.core.errors import ServiceError
from service.core.tasks.classify import CLASSIFY
from service.core.tasks.detect import DETECT
from service.core.tasks.segment import SEGMENT
from service.core.tasks.task import Options, Result, TaskSpec
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
    engine = Engine(Settings(models_dir=repository, default_models={}, warmup=False).engine_config())
    try:
        await engine.load()
        if engine.failures():
            raise UserError(f"the service refuses this model: {engine.failures()[0].message}")
        task = engine.models()[0].metadata.task
        body: ClassifyResponse | DetectResponse | SegmentResponse
        if task == "classify":
            body = ClassifyResponse.of(await _each(engine, CLASSIFY, images, ClassifyOptions()))
        elif task == "detect":
            body = DetectResponse.of(await _each(engine, DETECT, images, DetectOptions()))
        else:
            options = SegmentOptions()
            body = SegmentResponse.of(await _each(engine, SEGMENT, images, options), options.style)
        return body.model_dump_json(indent=2)
    except ServiceError as exc:
        raise UserError(f"{exc.code}: {exc.message}") from None
    finally:
        await engine.close()


async def _each(
    engine: Engine, task: TaskSpec[Options, Result], images: list[bytes], options: Options
) -> Answer[Result]:
    """One call per image, so any number of files stays within the service's per-request limits, answered
    together as one batch would be."""
    answers = [
        await engine.run(task, [image], options)
        for image in tqdm(images, desc="predicting", unit="image", leave=False, disable=None)
    ]
    return Answer(model=answers[0].model, images=[found for answer in answers for found in answer.images])
