"""A shared budget of units (decoded pixels, body bytes) that the requests in flight draw on, first come first
served: what one request cannot get within its wait is refused as overloaded, so memory stays bounded."""

from __future__ import annotations

import asyncio
from collections import deque

from service.core.errors import OVERLOADED_RETRY_AFTER_SECONDS, OverloadedError

# How long a request may wait for room before it is refused; one refused may retry once the requests ahead
# of it have finished.
WAIT_SECONDS = 2.0


class Budget:
    """`capacity` units shared by concurrent holders; event-loop only, so no lock is needed."""

    def __init__(self, name: str, capacity: int, wait_seconds: float = WAIT_SECONDS) -> None:
        self.name = name
        self.capacity = capacity
        self.wait_seconds = wait_seconds
        self.in_use = 0
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    def hold(self, units: int) -> _Held:
        """Hold `units` for the body of an `async with` block, waiting at most `wait_seconds` for them."""
        return _Held(self, units)

    async def acquire(self, units: int) -> None:
        """Take `units`, in arrival order; OverloadedError when they are not free within `wait_seconds`."""
        if units > self.capacity:
            raise ValueError(f"{units} {self.name} can never fit in a budget of {self.capacity}")
        if not self._waiters and self.in_use + units <= self.capacity:
            self.in_use += units
            return
        granted = asyncio.get_running_loop().create_future()
        entry = (units, granted)
        self._waiters.append(entry)
        try:
            await asyncio.wait_for(asyncio.shield(granted), self.wait_seconds)
        except TimeoutError:
            if not granted.done():
                self._waiters.remove(entry)
                self._grant_waiters()
                raise OverloadedError(
                    f"the server's {self.name} budget is in use by other requests "
                    f"({self.in_use} of {self.capacity}); this request needs {units}",
                    detail={"budget": self.name, "capacity": self.capacity, "needed": units},
                    retry_after=OVERLOADED_RETRY_AFTER_SECONDS,
                ) from None
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():
                self.release(units)
            elif entry in self._waiters:
                self._waiters.remove(entry)
                self._grant_waiters()
            raise

    def charge(self, units: int) -> None:
        """Count `units` that are already in memory, past the capacity if need be: what comes after waits."""
        self.in_use += units

    def release(self, units: int) -> None:
        self.in_use -= units
        self._grant_waiters()

    def _grant_waiters(self) -> None:
        while self._waiters and self.in_use + self._waiters[0][0] <= self.capacity:
            units, granted = self._waiters.popleft()
            self.in_use += units
            granted.set_result(None)


class _Held:
    """`Budget.hold`'s block: a class rather than an async generator, a few microseconds less per request."""

    __slots__ = ("_budget", "_units")

    def __init__(self, budget: Budget, units: int) -> None:
        self._budget = budget
        self._units = units

    async def __aenter__(self) -> None:
        await self._budget.acquire(self._units)

    async def __aexit__(self, *exc_info: object) -> None:
        self._budget.release(self._units)
