"""Work in a thread pool, awaited from the event loop at the least cost to the loop."""

from __future__ import annotations

import asyncio
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

    def settle(done: Future[R]) -> None:
        if not loop.is_closed():
            loop.call_soon_threadsafe(_copy_outcome, done, outcome)

    job.add_done_callback(settle)
    return outcome


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
