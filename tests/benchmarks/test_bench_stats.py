"""Level summaries count outcomes by status, only 2xx as throughput, and split the server's CPU."""

from __future__ import annotations

from collections import Counter

import pytest

from benchmarks.stats import LevelResult


def test_summary_counts_only_2xx_as_throughput_and_lists_every_other_outcome() -> None:
    result = LevelResult(
        concurrency=4,
        wall_seconds=2.0,
        statuses=Counter({"200": 4, "503": 3, "timeout": 1}),
        latency_ms={50: 25.0, 95: 38.0, 99: 39.5},
        client_cpu_seconds=0.5,
        server_cpu_seconds=3.0,
    )
    summary = result.summary()
    assert summary["ok"] == 4
    assert summary["requests"] == 8
    assert summary["throughput"] == 2.0
    assert summary["p50_ms"] == 25.0
    assert summary["errors"] == {"503": 3, "timeout": 1}
    assert summary["client_cores"] == 0.25
    assert summary["server_cores"] == 1.5
    assert summary["client_cpu_share"] == pytest.approx(0.5 / 3.0, abs=1e-4)
    assert "loop_cpu_ms_per_request" not in summary


def test_summary_splits_server_cpu_between_event_loop_and_other_threads_when_measured() -> None:
    result = LevelResult(
        concurrency=16,
        wall_seconds=1.0,
        statuses=Counter({"200": 200}),
        server_cpu_seconds=1.2,
        server_loop_cpu_seconds=0.3,
    )
    summary = result.summary()
    assert summary["loop_cpu_ms_per_request"] == pytest.approx(1.5)
    assert summary["other_cpu_ms_per_request"] == pytest.approx(4.5)
