"""Where the process is in its life: serving, draining (readiness 503, still answering) or stopping.

The server (service.http.server) moves it on signals; readiness, the protocol and the body reader look at it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Literal

logger = logging.getLogger("vision.lifecycle")

Phase = Literal["serving", "draining", "stopping"]
# Once stopping, a body must move again within this long: one arriving is finished, a stalled one cut off.
STALLED_BODY_SECONDS = 0.5


class Lifecycle:
    """The phase, and the body reads to cut short when the server stops: a stalled upload must neither
    hold the shutdown nor turn into a 500 when the server cancels what is left."""

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
        """No more new connections: a body still being waited for must arrive soon or be cut off."""
        self.phase = "stopping"
        for wait in self._body_waits:
            _shorten(wait)
        if self._body_waits:
            logger.info(
                "stopping: %d request bodies still arriving get %.1f s",
                len(self._body_waits),
                STALLED_BODY_SECONDS,
            )

    def watch(self, wait: asyncio.Timeout) -> None:
        """Register a body read's time-out, so `stop` can shorten it."""
        if self.stopping:
            _shorten(wait)
        self._body_waits.add(wait)

    def unwatch(self, wait: asyncio.Timeout) -> None:
        self._body_waits.discard(wait)


def _shorten(wait: asyncio.Timeout) -> None:
    soon = asyncio.get_running_loop().time() + STALLED_BODY_SECONDS
    when = wait.when()
    wait.reschedule(soon if when is None else min(when, soon))
