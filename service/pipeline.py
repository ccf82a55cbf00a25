"""A request's images through one model: decode in worker threads, then the model's micro-batcher."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import Executor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from service import observability
from service.batching import InferenceResult, QueueFullError
from service.errors import OverloadedError
from service.imaging import ImageLimits, PreparedImage, prepare_image
from service.registry import LoadedModel

T = TypeVar("T")


@dataclass(frozen=True)
class Inference:
    """Each image as decoded and the model's outputs for it, in upload order."""

    model: LoadedModel
    images: list[PreparedImage]
    results: list[InferenceResult]


async def run_images(
    model: LoadedModel,
    uploads: Sequence[bytes],
    *,
    limits: ImageLimits,
    decode_pool: Executor,
    keep_original: bool = False,
) -> Inference:
    """Decode every upload for `model`, run them through its batcher, and time both stages."""
    spec = model.metadata.input
    decode = partial(
        prepare_image,
        width=spec.width,
        height=spec.height,
        channels=spec.channels,
        resize=model.metadata.resize,
        limits=limits,
        keep_original=keep_original,
    )
    images = await timed_stage("decode", model.key, _map_in_pool(decode_pool, decode, uploads))
    try:
        results = await model.batcher.infer([image.pixels for image in images])
    except QueueFullError as exc:
        raise OverloadedError(f"{model.key} is overloaded: {exc}", headers={"Retry-After": "1"}) from None
    observability.record_stage("queue", model.key, max(result.queue_seconds for result in results))
    observability.record_stage("inference", model.key, max(result.inference_seconds for result in results))
    return Inference(model, images, results)


async def _map_in_pool(pool: Executor, work: Callable[[bytes], T], items: Sequence[bytes]) -> list[T]:
    loop = asyncio.get_running_loop()
    return list(await asyncio.gather(*(loop.run_in_executor(pool, work, item) for item in items)))


@contextmanager
def timed(stage: str, model_key: str) -> Iterator[None]:
    """Record how long the block took as `stage` of the current request."""
    started = time.perf_counter()
    try:
        yield
    finally:
        observability.record_stage(stage, model_key, time.perf_counter() - started)


async def timed_stage(stage: str, model_key: str, work: Awaitable[T]) -> T:
    """Await `work` and record how long it took as `stage` of the current request."""
    with timed(stage, model_key):
        return await work


async def in_pool(pool: Executor, work: Callable[[], T]) -> T:
    return await asyncio.get_running_loop().run_in_executor(pool, work)
