"""Work in a thread pool as one asyncio future: results in order, errors raised where awaited, and a call
given up before its work starts never runs it."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from service.core.pools import map_in_pool


def test_results_come_back_in_order_for_one_item_and_for_many() -> None:
    with ThreadPoolExecutor(2) as pool:
        assert asyncio.run(map_in_pool(pool, lambda x: x * x, [3])) == [9]
        assert asyncio.run(map_in_pool(pool, lambda x: x * x, list(range(20)))) == [x * x for x in range(20)]


def test_an_error_in_the_pool_is_raised_where_awaited() -> None:
    def fail(_: int) -> int:
        raise ValueError("bad item")

    with ThreadPoolExecutor(1) as pool, pytest.raises(ValueError, match="bad item"):
        asyncio.run(map_in_pool(pool, fail, [1]))


def test_work_given_up_before_it_starts_never_runs() -> None:
    release = threading.Event()
    ran: list[int] = []

    async def scenario() -> None:
        with ThreadPoolExecutor(1) as pool:
            blocker = asyncio.ensure_future(map_in_pool(pool, lambda _: release.wait(), [None]))
            queued = asyncio.ensure_future(map_in_pool(pool, ran.append, [1]))
            await asyncio.sleep(0.05)
            queued.cancel()
            with pytest.raises(asyncio.CancelledError):
                await queued
            release.set()
            await blocker

    asyncio.run(scenario())
    assert ran == []
