"""The shared budget: first come first served, bounded waits, nothing leaked by refusals or cancellations."""

from __future__ import annotations

import asyncio

import pytest

from service.core.budget import Budget
from service.core.errors import OverloadedError


def test_holders_share_the_capacity_and_waiters_go_in_order() -> None:
    async def main() -> list[str]:
        budget = Budget("pixel", 10, wait_seconds=5)
        order: list[str] = []
        await budget.acquire(8)

        async def waiter(name: str, units: int) -> None:
            async with budget.hold(units):
                order.append(name)

        first = asyncio.create_task(waiter("first", 6))
        await asyncio.sleep(0)
        # Small enough to fit now, but it must not overtake the request that waits ahead of it.
        second = asyncio.create_task(waiter("second", 2))
        await asyncio.sleep(0.01)
        assert order == []
        budget.release(8)
        await asyncio.gather(first, second)
        assert budget.in_use == 0
        return order

    assert asyncio.run(main()) == ["first", "second"]


def test_a_request_that_cannot_fit_in_time_is_overloaded_and_leaves_nothing_held() -> None:
    async def main() -> None:
        budget = Budget("pixel", 10, wait_seconds=0.05)
        await budget.acquire(7)
        with pytest.raises(OverloadedError) as refused:
            await budget.acquire(5)
        assert refused.value.retry_after == 1
        assert refused.value.detail == {"budget": "pixel", "capacity": 10, "needed": 5}
        budget.release(7)
        assert budget.in_use == 0
        await budget.acquire(10)

    asyncio.run(main())


def test_a_cancelled_waiter_gives_its_turn_to_the_next() -> None:
    async def main() -> None:
        budget = Budget("byte", 10, wait_seconds=5)
        await budget.acquire(10)
        cancelled = asyncio.create_task(budget.acquire(9))
        await asyncio.sleep(0)
        patient = asyncio.create_task(budget.acquire(1))
        await asyncio.sleep(0)
        cancelled.cancel()
        await asyncio.gather(cancelled, return_exceptions=True)
        budget.release(9)
        await asyncio.wait_for(patient, 1)
        assert budget.in_use == 2

    asyncio.run(main())


def test_more_than_the_capacity_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="never fit"):
        asyncio.run(Budget("pixel", 10).acquire(11))


def test_units_charged_past_the_capacity_hold_back_what_comes_after_until_released() -> None:
    async def main() -> None:
        budget = Budget("byte", 10, wait_seconds=5)
        budget.charge(15)  # already in memory: counted, never refused
        waiting = asyncio.create_task(budget.acquire(1))
        await asyncio.sleep(0.01)
        assert not waiting.done()
        budget.release(15)
        await waiting
        assert budget.in_use == 1

    asyncio.run(main())
