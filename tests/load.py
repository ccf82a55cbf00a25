"""A small closed-loop load generator for the end-to-end tests: N clients, each sending its next request as
soon as the last one is answered, with every outcome kept (status, transport error, answering model)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import httpx

from benchmarks.servers import process_tree

Send = Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]


class Answered(NamedTuple):
    """One answered request: when it was sent, when its answer arrived, and the answer."""

    sent: float
    received: float
    response: httpx.Response


@dataclass
class Outcomes:
    """What the clients saw: statuses, transport errors by kind, and when each kind was first seen."""

    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    first_seen: dict[str, float] = field(default_factory=dict)
    failed: list[tuple[float, str]] = field(default_factory=list)  # (sent at, the transport error)
    answers: list[Answered] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.statuses.values()) + sum(self.errors.values())

    def note(self, kind: str) -> None:
        self.first_seen.setdefault(kind, time.monotonic())


async def run_clients(
    url: str, clients: int, send: Send, *, requests: int | None = None, until: asyncio.Event | None = None
) -> Outcomes:
    """`clients` concurrent clients sending `send(client, i)` until `requests` are done or `until` is set."""
    outcomes = Outcomes()
    issued = 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)

    def more() -> bool:
        return (requests is None or issued < requests) and (until is None or not until.is_set())

    async def client_loop(client: httpx.AsyncClient) -> None:
        nonlocal issued
        while more():
            index = issued
            issued += 1
            sent = time.monotonic()
            try:
                response = await send(client, index)
            except httpx.ConnectError:
                outcomes.errors["refused"] += 1
                outcomes.note("refused")
                await asyncio.sleep(0.01)
                continue
            except httpx.HTTPError as exc:
                outcomes.errors[type(exc).__name__] += 1
                outcomes.note(type(exc).__name__)
                outcomes.failed.append((sent, repr(exc)))
                continue
            outcomes.statuses[response.status_code] += 1
            outcomes.note(str(response.status_code))
            outcomes.answers.append(Answered(sent, time.monotonic(), response))

    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as client:
        await asyncio.gather(*(client_loop(client) for _ in range(clients)))
    return outcomes


def rss_bytes(pid: int, field_name: str = "VmRSS") -> int:
    """Resident memory of a process (VmRSS), or its peak so far (VmHWM), from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field_name + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field_name)


def tree_peak_bytes(pid: int) -> int:
    """The peaks of a process and its children (the decode workers) added up: never less than the peak of
    their sum, whenever each peaked."""
    return sum(rss_bytes(member, "VmHWM") for member in process_tree(pid))
