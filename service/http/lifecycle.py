"""Where the process is in its life: serving, draining (readiness 503, still answering) or stopping.

The server (service.http.server) moves it on signals; readiness, the protocol and the body reader look at it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Literal

logger = logging.getLogger("vision.lifecycle")

Phase = Literal["serving", "draining", "stopping"]


class Lifecycle:
    """The phase, and the body reads to cut short when the server stops: a stalled upload must not hold
    the shutdown, nor turn into a 500 when the server cancels what is left."""

    def __init__(self) -> None:
        self.phase: Phase = "serving"
        self._body_waits: set[asyncio.Timeout] = set()

    @property
    def draining(self) -> bool:
        """Whether the process is on its way out: balancers must send new work elsewhere."""
        return self.phase != "serving"

    @property
    def stopping(self) -> bool:
        return self.phase == "stopping"

    def drain(self, seconds: float) -> None:
        if self.phase == "serving":
            self.phase = "draining"
            logger.info("draining: readiness answers 503; still serving for %.1f s", seconds)

    def stop(self) -> None:
        """No more new connections: every body still being waited for is cut off now."""
        self.phase = "stopping"
        now = asyncio.get_running_loop().time()
        for wait in self._body_waits:
            wait.reschedule(now)
        if self._body_waits:
            logger.info("stopping: cut off %d stalled request bodies", len(self._body_waits))

    def watch(self, wait: asyncio.Timeout) -> None:
        """Register a body read's time-out, so `stop` can end it at once."""
        if self.stopping:
            wait.reschedule(asyncio.get_running_loop().time())
        self._body_waits.add(wait)

    def unwatch(self, wait: asyncio.Timeout) -> None:
        self._body_waits.discard(wait)
