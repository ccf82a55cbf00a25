"""Reload: load-then-swap, one at a time, with replaced versions retired once idle and an optional poll.

New and changed files are opened, checked and warmed up in a worker thread beside what serves
(`ModelRepository.plan_reload`); the plan is swapped in on the event loop in one step
(`ModelRepository.swap`). Calls in flight finish on the version they started on: a replaced or removed
version is retired (its batcher stopped) once its last call is done.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from service.core.repository import LoadedModel, ModelRepository, ModelState

logger = logging.getLogger("vision.reload")


class Reloader:
    """Reloads and unloads on one repository, one at a time, and polls it when asked to."""

    def __init__(self, repository: ModelRepository, *, warm_up: bool) -> None:
        self._repository = repository
        self._warm_up = warm_up
        self._lock = asyncio.Lock()
        self._retiring: set[asyncio.Task[None]] = set()
        self._poller: asyncio.Task[None] | None = None

    async def reload(self, names: Sequence[str] | None = None) -> list[ModelState]:
        """Load new and changed files of `names` (None: the whole repository) beside what serves, warm
        them up, then swap them in; removed files stop serving. Returns the repository index."""
        repository = self._repository
        async with self._lock:
            plan = await asyncio.to_thread(repository.plan_reload, names, warm_up=self._warm_up)
            self._retire(repository.swap(plan))
        if plan.fresh:
            logger.info("reload: now serving %s", ", ".join(model.key for model in plan.fresh))
        return repository.index()

    async def unload(self, name: str) -> list[ModelState]:
        """Stop serving every version of `name` (calls in flight finish) until it is loaded again."""
        async with self._lock:
            retired = self._repository.unload(name)
            self._retire(retired)
        if retired:
            logger.info("unloaded %s", ", ".join(model.key for model in retired))
        return self._repository.index()

    def poll(self, seconds: float) -> None:
        """Reload the whole repository every `seconds` until closed."""
        self._poller = asyncio.create_task(self._poll(seconds))

    async def close(self) -> None:
        """Stop polling and wait for the versions being retired."""
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
        await asyncio.gather(*self._retiring, return_exceptions=True)

    def _retire(self, models: Sequence[LoadedModel]) -> None:
        for model in models:
            task = asyncio.create_task(model.retire())
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)

    async def _poll(self, seconds: float) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await self.reload()
            except Exception:
                logger.exception("polling the model repository failed")
