"""Latency and throughput summaries of one load level: pure arithmetic, tested on its own."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation between closest ranks, as numpy's default."""
    if not values:
        return math.nan
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must lie in 0..100, got {q}")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class LevelResult:
    """What one load level produced: per-request latencies of successes and counts by status."""

    concurrency: int
    wall_seconds: float
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    client_cpu_seconds: float = 0.0
    server_cpu_seconds: float = 0.0
    # The server's event-loop thread alone, where it was measured (this service): None elsewhere.
    server_loop_cpu_seconds: float | None = None

    @property
    def ok(self) -> int:
        return sum(count for status, count in self.statuses.items() if status.startswith("2"))

    @property
    def throughput(self) -> float:
        """Successful responses per second of wall time."""
        return self.ok / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def latency_ms(self, q: float) -> float:
        return 1000 * percentile(self.latencies, q)

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
            "p50_ms": round(self.latency_ms(50), 2),
            "p95_ms": round(self.latency_ms(95), 2),
            "p99_ms": round(self.latency_ms(99), 2),
            "errors": self.errors(),
            "client_cores": round(self.client_cpu_seconds / self.wall_seconds, 3)
            if self.wall_seconds
            else 0.0,
            "server_cores": round(self.server_cpu_seconds / self.wall_seconds, 3)
            if self.wall_seconds
            else 0.0,
            **self._cpu_split(),
        }

    def _cpu_split(self) -> dict[str, float]:
        """Server CPU per request on the event loop and on every other thread, in ms."""
        requests = sum(self.statuses.values())
        if self.server_loop_cpu_seconds is None or not requests:
            return {}
        other = self.server_cpu_seconds - self.server_loop_cpu_seconds
        return {
            "loop_cpu_ms_per_request": round(1000 * self.server_loop_cpu_seconds / requests, 3),
            "other_cpu_ms_per_request": round(1000 * other / requests, 3),
        }
