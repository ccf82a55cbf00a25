"""Percentiles and level summaries agree with numpy and count outcomes by status."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from benchmarks.stats import LevelResult, percentile


@pytest.mark.parametrize("q", [0, 1, 50, 95, 99, 100])
def test_percentile_matches_numpy_linear_interpolation(q: float) -> None:
    values = list(np.random.default_rng(3).exponential(20.0, size=257))
    assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)))


def test_percentile_of_one_value_is_that_value_and_of_none_is_nan() -> None:
    assert percentile([4.0], 99) == 4.0
    assert math.isnan(percentile([], 50))


def test_percentile_rejects_out_of_range() -> None:
    with pytest.raises(ValueError, match=r"0\.\.100"):
        percentile([1.0], 101)


def test_summary_counts_only_2xx_as_throughput_and_lists_every_other_outcome() -> None:
    result = LevelResult(
        concurrency=4,
        wall_seconds=2.0,
        latencies=[0.010, 0.020, 0.030, 0.040],
        statuses=Counter({"200": 4, "503": 3, "timeout": 1}),
        client_cpu_seconds=0.5,
        server_cpu_seconds=3.0,
    )
    summary = result.summary()
    assert summary["ok"] == 4
    assert summary["requests"] == 8
    assert summary["throughput"] == 2.0
    assert summary["p50_ms"] == pytest.approx(25.0)
    assert summary["errors"] == {"503": 3, "timeout": 1}
    assert summary["client_cores"] == 0.25
    assert summary["server_cores"] == 1.5
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
