"""Work in a thread pool, awaited from the event loop at the least cost to the loop; and the one way other
threads hand the loop an answer."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


async def map_in_pool(pool: Executor, work: Callable[[T], R], items: Sequence[T]) -> list[R]:
    loop = asyncio.get_running_loop()
    if len(items) == 1:
        return [await submit(loop, pool, work, items[0])]
    return list(await asyncio.gather(*(submit(loop, pool, work, item) for item in items)))


def submit(
    loop: asyncio.AbstractEventLoop, pool: Executor, work: Callable[[T], R], item: T
) -> asyncio.Future[R]:
    """`work(item)` in `pool` as an asyncio future settled by one loop callback: half the event-loop work of
    `run_in_executor`, which chains two futures through several callbacks. Cancelling it cancels the work."""
    outcome: asyncio.Future[R] = loop.create_future()
    job = pool.submit(work, item)
    outcome.add_done_callback(lambda settled: job.cancel() if settled.cancelled() else None)

    job.add_done_callback(lambda done: call_from_thread(loop, _copy_outcome, done, outcome))
    return outcome


def call_from_thread(loop: asyncio.AbstractEventLoop, callback: Callable[..., object], *args: object) -> None:
    """`callback(*args)` on `loop`, called from any thread; nothing once the loop has closed, since nobody
    waits for an answer then."""
    with contextlib.suppress(RuntimeError):  # closed, perhaps just now
        loop.call_soon_threadsafe(callback, *args)


def _copy_outcome(done: Future[R], outcome: asyncio.Future[R]) -> None:
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
