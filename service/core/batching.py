"""Dynamic micro-batching: concurrent requests for one model version share a single `session.run`."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from service.core.errors import OVERLOADED_RETRY_AFTER_SECONDS, OverloadedError
from service.core.pools import submit

RunFn = Callable[[np.ndarray], dict[str, np.ndarray]]
# What an image's outputs become in the worker thread, right after the run (a task's post-processing).
Finish = Callable[[dict[str, np.ndarray]], Any]


@dataclass(frozen=True)
class InferenceResult:
    """One image's share of a batch run, what its `finish` made of it, and how long each step took."""

    outputs: dict[str, np.ndarray]
    queue_seconds: float
    inference_seconds: float
    batch_size: int
    finished: Any = None
    finish_seconds: float = 0.0


@dataclass
class _Pending:
    pixels: np.ndarray
    future: asyncio.Future[InferenceResult]
    enqueued: float = field(default=0.0)
    finish: Finish | None = None


@dataclass(frozen=True)
class _Row:
    """One image of a run as the worker thread leaves it: outputs, finished, or the error finishing them."""

    outputs: dict[str, np.ndarray]
    finished: Any = None
    error: Exception | None = None
    seconds: float = 0.0


class MicroBatcher:
    """Collects up to `max_batch` images or waits `max_delay` seconds, then runs them together in order."""

    def __init__(
        self,
        name: str,
        run: RunFn,
        executor: Executor,
        *,
        max_batch: int,
        max_delay: float,
        queue_size: int,
        concurrency: int,
        on_batch: Callable[[int], None] = lambda size: None,
        on_queue_depth: Callable[[int], None] = lambda depth: None,
    ) -> None:
        self.name = name
        self._run = run
        self._executor = executor
        self.max_batch = max_batch
        self.max_delay = max_delay
        self.queue_size = queue_size
        self._concurrency = concurrency
        self._on_batch = on_batch
        self._on_queue_depth = on_queue_depth
        self._pending: deque[_Pending] = deque()
        self._arrived = asyncio.Event()
        self._workers: list[asyncio.Task[None]] = []

    @property
    def depth(self) -> int:
        return len(self._pending)

    def start(self) -> None:
        self._workers = [asyncio.create_task(self._work()) for _ in range(self._concurrency)]

    async def stop(self) -> None:
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers = []
        while self._pending:
            item = self._pending.popleft()
            if not item.future.done():
                item.future.cancel()

    async def infer(
        self, images: Sequence[np.ndarray], finish: Sequence[Finish] | None = None
    ) -> list[InferenceResult]:
        """Queue all images of one request at once (all or none), and wait for their results; when they do
        not fit in the queue, shed the request as overloaded. Each image's `finish` runs on its outputs in
        the worker thread, so post-processing never takes the event loop."""
        if len(self._pending) + len(images) > self.queue_size:
            raise OverloadedError(
                f"{self.name} is overloaded: {len(self._pending)} images already waiting "
                f"(limit {self.queue_size})",
                retry_after=OVERLOADED_RETRY_AFTER_SECONDS,
            )
        loop = asyncio.get_running_loop()
        finishers = finish or [None] * len(images)
        now = time.perf_counter()
        items = [
            _Pending(pixels, loop.create_future(), now, finisher)
            for pixels, finisher in zip(images, finishers, strict=True)
        ]
        self._pending.extend(items)
        self._on_queue_depth(len(self._pending))
        self._arrived.set()
        try:
            if len(items) == 1:
                return [await items[0].future]
            return list(await asyncio.gather(*(item.future for item in items)))
        finally:
            # A client that went away leaves nothing behind for a worker to run.
            for item in items:
                item.future.cancel()

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect(loop)
            if batch:
                await self._run_batch(loop, batch)

    async def _collect(self, loop: asyncio.AbstractEventLoop) -> list[_Pending]:
        while not self._pending:
            self._arrived.clear()
            await self._arrived.wait()
        batch = self._take(self.max_batch)
        deadline = loop.time() + self.max_delay
        while len(batch) < self.max_batch and (remaining := deadline - loop.time()) > 0:
            if not self._pending:
                self._arrived.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._arrived.wait(), remaining)
                continue
            batch.extend(self._take(self.max_batch - len(batch)))
        return [item for item in batch if not item.future.done()]

    def _stack_run_and_finish(self, batch: list[_Pending]) -> list[_Row]:
        # Stacking copies every image: done in the worker thread, the event loop stays free for requests.
        outputs = self._run(np.stack([item.pixels for item in batch]))
        return [
            _finished({role: values[row] for role, values in outputs.items()}, item.finish)
            for row, item in enumerate(batch)
        ]

    def _take(self, count: int) -> list[_Pending]:
        taken = [self._pending.popleft() for _ in range(min(count, len(self._pending)))]
        self._on_queue_depth(len(self._pending))
        return taken

    async def _run_batch(self, loop: asyncio.AbstractEventLoop, batch: list[_Pending]) -> None:
        # Durations use perf_counter: uvloop's loop.time() ticks in whole milliseconds.
        started = time.perf_counter()
        self._on_batch(len(batch))
        try:
            rows = await submit(loop, self._executor, self._stack_run_and_finish, batch)
        except Exception as exc:
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        # The run alone: the finishes that followed it in the same thread are each image's own.
        run_seconds = time.perf_counter() - started - sum(row.seconds for row in rows)
        for row, item in zip(rows, batch, strict=True):
            if item.future.done():
                continue
            if row.error is not None:
                item.future.set_exception(row.error)
                continue
            item.future.set_result(
                InferenceResult(
                    row.outputs,
                    started - item.enqueued,
                    run_seconds,
                    len(batch),
                    row.finished,
                    row.seconds,
                )
            )


def _finished(outputs: dict[str, np.ndarray], finish: Finish | None) -> _Row:
    """One image's outputs through its `finish`; its error stays its own, not the whole batch's."""
    if finish is None:
        return _Row(outputs)
    started = time.perf_counter()
    try:
        return _Row(outputs, finish(outputs), seconds=time.perf_counter() - started)
    except Exception as exc:
        return _Row(outputs, error=exc)
