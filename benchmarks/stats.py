"""What load levels produced, summarised, and how far a median of them can be trusted: pure arithmetic,
tested on its own."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class LevelResult:
    """One load level: answers by status (or `timeout`, `conn`), latency percentiles, and CPU seconds."""

    concurrency: int
    wall_seconds: float
    statuses: Counter[str] = field(default_factory=Counter)
    # Percentile (50, 95, 99) -> milliseconds, over every answer the load generator read.
    latency_ms: dict[int, float] = field(default_factory=dict)
    client_cpu_seconds: float = 0.0
    server_cpu_seconds: float = 0.0
    # The server's event-loop thread alone, where it was measured (this service): None elsewhere.
    server_loop_cpu_seconds: float | None = None
    # Its decode worker processes, part of what is not the loop, where measured with the loop.
    server_decode_cpu_seconds: float | None = None
    # 503 answers that did not say when to come back (`Retry-After`).
    shed_without_retry_after: int = 0

    @property
    def ok(self) -> int:
        return sum(count for status, count in self.statuses.items() if status.startswith("2"))

    @property
    def throughput(self) -> float:
        """Successful responses per second of wall time."""
        return self.ok / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def errors(self) -> dict[str, int]:
        """Every non-2xx outcome by status (or `timeout`, `conn`)."""
        return {
            status: count for status, count in sorted(self.statuses.items()) if not status.startswith("2")
        }

    def summary(self) -> dict[str, object]:
        return {
            "concurrency": self.concurrency,
            "requests": sum(self.statuses.values()),
            "ok": self.ok,
            "wall_s": round(self.wall_seconds, 3),
            "throughput": round(self.throughput, 2),
            **{f"p{q}_ms": round(self.latency_ms.get(q, float("nan")), 2) for q in (50, 95, 99)},
            "errors": self.errors(),
            "shed_without_retry_after": self.shed_without_retry_after,
            "client_cores": self._cores(self.client_cpu_seconds),
            "server_cores": self._cores(self.server_cpu_seconds),
            "client_cpu_share": round(self.client_cpu_seconds / self.server_cpu_seconds, 4)
            if self.server_cpu_seconds
            else 0.0,
            **self._cpu_split(),
        }

    def _cores(self, seconds: float) -> float:
        return round(seconds / self.wall_seconds, 3) if self.wall_seconds else 0.0

    def _cpu_split(self) -> dict[str, float]:
        """Server CPU per request on the event loop and on every other thread (of which the decode workers'),
        in ms."""
        requests = sum(self.statuses.values())
        if self.server_loop_cpu_seconds is None or not requests:
            return {}
        other = self.server_cpu_seconds - self.server_loop_cpu_seconds
        split = {
            "loop_cpu_ms_per_request": round(1000 * self.server_loop_cpu_seconds / requests, 3),
            "other_cpu_ms_per_request": round(1000 * other / requests, 3),
        }
        if self.server_decode_cpu_seconds is not None:
            split["decode_cpu_ms_per_request"] = round(1000 * self.server_decode_cpu_seconds / requests, 3)
        return split


def median_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """A distribution-free interval for the median of `values`: the k-th smallest to the k-th largest, with
    k the largest rank whose binomial tail leaves at least `confidence` covered, and the coverage it gives.
    Too few values for `confidence` give their whole range and the smaller coverage that has."""
    ordered = sorted(values)
    n = len(ordered)
    tails = [math.comb(n, i) / 2**n for i in range(n + 1)]
    k = 1
    while k < n // 2 and 1 - 2 * sum(tails[: k + 1]) >= confidence:
        k += 1
    return ordered[k - 1], ordered[n - k], 1 - 2 * sum(tails[:k])
