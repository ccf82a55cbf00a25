"""The engine: the one facade every adapter calls. Images or tensors in, typed answers out.

A call resolves its model; the intake (service.core.intake) decodes its uploads within the limits and queues
them on the model's micro-batcher, and each image is finished by its task (service.core.tasks) in the run
thread. The HTTP routes, the benchmarks and the trainer's evaluation all go through here or through the
same task modules, so they cannot drift apart.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np

from service.api.options import ModelChoice
from service.api.terms import Task
from service.core.batching import Finish, InferenceResult
from service.core.decoding import DEFAULT_DECODE_LIMITS, DecodeLimits
from service.core.errors import ImageError, InvalidInputError, NotReadyError
from service.core.imaging import PreparedImage
from service.core.intake import Intake, RequestLimits
from service.core.monitor import DriftMonitor, MonitorConfig, MonitorReport
from service.core.reload import Reloader
from service.core.repository import (
    DEFAULT_MAX_MODEL_BYTES,
    BatchingConfig,
    DefaultModel,
    LoadedModel,
    LoadFailure,
    ModelRepository,
    ModelState,
    Readiness,
)
from service.core.runtime import ProviderChoice, batch_delay_seconds, plan_execution
from service.core.tasks.task import Options, Result, TaskSpec
from service.observability import timing

logger = logging.getLogger("vision.engine")

T = TypeVar("T")
# While loading, a second is a reasonable wait before asking again.
LOADING_RETRY_AFTER_SECONDS = 1


@dataclass(frozen=True)
class EngineConfig:
    """Where the models are, how they run and batch, and what one call may ask for."""

    models_dir: Path
    limits: RequestLimits
    default_models: Mapping[str, str] = field(default_factory=dict)
    provider: ProviderChoice = "auto"
    cores: int = 1
    threads: int = 0
    inference_workers: int = 0
    decode_workers: int = 0
    max_batch: int = 8
    max_delay_ms: float | None = None
    queue_size: int = 32
    pixel_budget: int = 128_000_000
    warmup: bool = True
    poll_seconds: float = 0  # rescan the repository this often; 0: only when asked
    max_model_bytes: int = DEFAULT_MAX_MODEL_BYTES
    follow_symlinks: bool = False
    decode_limits: DecodeLimits = DEFAULT_DECODE_LIMITS
    monitoring: MonitorConfig = field(default_factory=MonitorConfig)


@dataclass(frozen=True, slots=True)
class ModelId:
    """Which model version answered."""

    name: str
    version: int


@dataclass(frozen=True)
class Answer(Generic[T]):
    """A task call's answer: the model version that gave it and one result per image, in upload order (in a
    partial call, an ImageError in the place of each image that failed)."""

    model: ModelId
    images: list[T | ImageError]


@dataclass(frozen=True)
class TensorAnswer:
    """A tensor call's answer: the model version and each requested output by tensor name, batch first."""

    model: ModelId
    outputs: dict[str, np.ndarray]


class Engine:
    """Loads the model repository once, then answers task and tensor calls until closed."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self.limits = config.limits
        self.plan = plan_execution(
            config.provider, cores=config.cores, threads=config.threads, workers=config.inference_workers
        )
        delay = batch_delay_seconds(self.plan, config.max_delay_ms)
        logger.info(
            "execution plan: providers %s, %d intra-op threads x %d concurrent runs, batches of up to %d "
            "waiting up to %.1f ms",
            ",".join(self.plan.providers),
            self.plan.intra_op_threads,
            self.plan.concurrent_runs,
            config.max_batch,
            delay * 1000,
        )
        self.intake = Intake(
            config.limits,
            threads=config.decode_workers or config.cores,
            decode_limits=config.decode_limits,
            queue_size=config.queue_size,
            pixel_budget=config.pixel_budget,
        )
        self._repository = ModelRepository(
            root=config.models_dir,
            plan=self.plan,
            run_slots=threading.BoundedSemaphore(self.plan.concurrent_runs),
            batching=BatchingConfig(config.max_batch, delay, config.queue_size),
            preferred_defaults=config.default_models,
            max_model_bytes=config.max_model_bytes,
            follow_symlinks=config.follow_symlinks,
            monitoring=config.monitoring,
        )
        self._reloader = Reloader(self._repository, warm_up=config.warmup)
        self._loaded = False
        self._load_error: str | None = None

    async def load(self) -> None:
        """Open and warm up every model in a worker thread, then serve; a failure stays in readiness."""
        try:
            await asyncio.gather(
                asyncio.to_thread(self.intake.start), asyncio.to_thread(self._repository.load_all)
            )
            if self.config.warmup:
                await asyncio.to_thread(self._repository.warm_up)
        except Exception as exc:
            self._load_error = f"loading the model repository failed: {exc}"
            logger.exception("loading the model repository failed")
            return
        self._repository.start()
        self._loaded = True
        reason = self._repository.not_ready_reason()
        count = len(list(self._repository.loaded()))
        logger.info("ready: %d model versions loaded%s", count, f" ({reason})" if reason else "")
        if self.config.poll_seconds:
            self._reloader.poll(self.config.poll_seconds)

    async def reload(self, names: Sequence[str] | None = None) -> list[ModelState]:
        """Load new and changed files of `names` (None: all) beside what serves, then swap them in; NotReady
        while loading. Returns the repository index."""
        self._check_loaded()
        return await self._reloader.reload(names)

    async def unload(self, name: str) -> list[ModelState]:
        """Stop serving every version of `name` (calls in flight finish) until it is loaded again."""
        self._check_loaded()
        return await self._reloader.unload(name)

    def index(self) -> list[ModelState]:
        return self.repository.index()

    async def close(self) -> None:
        await self._reloader.close()
        await self._repository.stop()
        self.intake.close()

    def readiness(self) -> Readiness:
        if self._load_error is not None:
            return Readiness("unavailable", self._load_error)
        if not self._loaded:
            return Readiness("loading", "models are still loading")
        return self._repository.readiness()

    @property
    def repository(self) -> ModelRepository:
        """The loaded repository; NotReady while it is still loading or failed to load."""
        self._check_loaded()
        return self._repository

    def _check_loaded(self) -> None:
        if not self._loaded:
            reason = self._load_error or "models are still loading"
            raise NotReadyError(f"not ready: {reason}", retry_after=LOADING_RETRY_AFTER_SECONDS)

    def models(self) -> list[LoadedModel]:
        return list(self.repository.loaded())

    def failures(self) -> list[LoadFailure]:
        return list(self.repository.failures)

    def default_for(self, task: Task) -> DefaultModel | None:
        return self.repository.defaults.get(task)

    def find(self, name: str, version: int | None = None) -> LoadedModel:
        return self.repository.find(name, version)

    def monitor(self, name: str, version: int | None = None) -> tuple[ModelId, MonitorReport | None]:
        """A model version's drift window against its reference; None with monitoring off."""
        model = self.find(name, version)
        return _model_id(model), None if model.monitor is None else model.monitor.report()

    def resolve(self, task: Task, choice: ModelChoice) -> LoadedModel:
        """The model version a task call names, or its task's default."""
        model = self.repository.resolve(task, choice.model, choice.version)
        timing.use_model(model.key)
        return model

    async def run(
        self,
        task: TaskSpec[Options, Result],
        images: Sequence[bytes],
        options: Options,
        names: Sequence[str | None] | None = None,
    ) -> Answer[Result]:
        """Each image decoded, run through the model the options name (or the task's default) and finished
        by the task, in upload order; `names` are the uploads' file names, for the errors that name them."""
        model = self.resolve(task.runs_on, options)
        task.check(model.metadata, options)
        labels = model.metadata.labels

        def finisher(image: PreparedImage) -> Finish:
            if model.monitor is None:
                return functools.partial(task.finish, image=image, labels=labels, options=options)
            return functools.partial(
                _finish_and_watch, task, image=image, labels=labels, options=options, monitor=model.monitor
            )

        outcomes = await self.intake.run(
            model, images, finisher, task.preview_side(options), names=names, partial=options.partial
        )
        results = [outcome for outcome in outcomes if not isinstance(outcome, ImageError)]
        if results:
            _record_batch_timings(results)
        return Answer(
            _model_id(model),
            [outcome if isinstance(outcome, ImageError) else outcome.finished for outcome in outcomes],
        )

    async def infer_tensors(
        self,
        name: str,
        version: int | None,
        inputs: Mapping[str, np.ndarray],
        outputs: Sequence[str] | None = None,
    ) -> TensorAnswer:
        """Raw input tensors through a model's batcher; `outputs` names the tensors to return (None: all)."""
        model = self.find(name, version)
        timing.use_model(model.key)
        batch = self._input_batch(model, inputs)
        wanted = _requested_outputs(model, outputs)
        with model.in_use():  # entered before the first await: a reload cannot retire it under this call
            results = await model.batcher.infer(list(batch))
        _record_batch_timings(results)
        role_of = {tensor: role for role, tensor in model.metadata.outputs.items()}
        stacked = {
            tensor: np.stack([result.outputs[role_of[tensor]] for result in results]) for tensor in wanted
        }
        return TensorAnswer(_model_id(model), stacked)

    def _input_batch(self, model: LoadedModel, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        spec = model.metadata.input
        unknown = sorted(set(inputs) - {spec.name})
        if unknown:
            raise InvalidInputError(
                f"unknown input {unknown[0]!r}: model {model.key} has one input, named {spec.name!r}"
            )
        if spec.name not in inputs:
            raise InvalidInputError(f"missing input: model {model.key} needs its input named {spec.name!r}")
        batch = inputs[spec.name]
        expected = [spec.height, spec.width, spec.channels]
        limit = self.limits.max_images
        if batch.ndim != 4 or list(batch.shape[1:]) != expected or not 1 <= batch.shape[0] <= limit:
            raise InvalidInputError(
                f"input {spec.name!r} must have shape [N, {', '.join(map(str, expected))}] with "
                f"1 <= N <= {limit}, not {list(batch.shape)}"
            )
        batch = batch.astype(np.float32, copy=False)
        if not np.isfinite(batch).all():
            # NaN in gives NaN out, which JSON cannot even carry: refuse it rather than answer nulls.
            raise InvalidInputError(f"input {spec.name!r} holds NaN or infinite values")
        return batch


def _finish_and_watch(
    task: TaskSpec[Options, Result],
    outputs: dict[str, np.ndarray],
    *,
    image: PreparedImage,
    labels: Sequence[str],
    options: Options,
    monitor: DriftMonitor,
) -> Result:
    """The task's answer, watched by the model's drift monitor."""
    return watch(task, outputs, image, task.finish(outputs, image, labels, options), labels, options, monitor)


def watch(
    task: TaskSpec[Options, Result],
    outputs: dict[str, np.ndarray],
    image: PreparedImage,
    finished: Result,
    labels: Sequence[str],
    options: Options,
    monitor: DriftMonitor,
) -> Result:
    """`finished` counted by the model's drift monitor, and marked unfamiliar or not when the model has a
    reference to judge by: all that monitoring adds to an image."""
    unfamiliar = monitor.observe(image, task.observe(outputs, image, finished, labels, options))
    return finished if unfamiliar is None else replace(finished, unfamiliar=unfamiliar)


def _requested_outputs(model: LoadedModel, outputs: Sequence[str] | None) -> list[str]:
    available = list(model.metadata.outputs.values())
    if outputs is None:
        return available
    unknown = sorted(set(outputs) - set(available))
    if unknown:
        raise InvalidInputError(f"unknown output {unknown[0]!r}: model {model.key} has {sorted(available)}")
    return list(outputs)


def _record_batch_timings(results: Sequence[InferenceResult]) -> None:
    timing.record("queue", max(result.queue_seconds for result in results))
    timing.record("inference", max(result.inference_seconds for result in results))
    finished = sum(result.finish_seconds for result in results)
    if finished:
        timing.record("postprocess", finished)


def _model_id(model: LoadedModel) -> ModelId:
    return ModelId(model.metadata.name, model.metadata.version)
