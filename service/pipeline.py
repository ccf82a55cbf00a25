"""A request's images through one model: decode in worker threads, then the model's micro-batcher."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import Executor, Future
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
    if len(items) == 1:
        return [await _submit(loop, pool, work, items[0])]
    return list(await asyncio.gather(*(_submit(loop, pool, work, item) for item in items)))


def _submit(
    loop: asyncio.AbstractEventLoop, pool: Executor, work: Callable[[bytes], T], item: bytes
) -> asyncio.Future[T]:
    """`work(item)` in `pool` as an asyncio future settled by one loop callback: half the event-loop work of
    `run_in_executor`, which chains two futures through several callbacks. Cancelling it cancels the work."""
    outcome: asyncio.Future[T] = loop.create_future()
    job = pool.submit(work, item)
    outcome.add_done_callback(lambda settled: job.cancel() if settled.cancelled() else None)

    def settle(done: Future[T]) -> None:
        if not loop.is_closed():
            loop.call_soon_threadsafe(_copy_outcome, done, outcome)

    job.add_done_callback(settle)
    return outcome


def _copy_outcome(done: Future[T], outcome: asyncio.Future[T]) -> None:
    if outcome.done():
        return
    if done.cancelled():
        outcome.cancel()
        return
    error = done.exception()
    if error is None:
        outcome.set_result(done.result())
    else:
        outcome.set_exception(error)


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
