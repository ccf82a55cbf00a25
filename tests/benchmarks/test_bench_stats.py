"""Level summaries count outcomes by status, only 2xx as throughput, and split the server's CPU; a median's
interval has the coverage the binomial gives it."""

from __future__ import annotations

from collections import Counter

import pytest

from benchmarks.stats import LevelResult, median_interval


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
    assert "decode_cpu_ms_per_request" not in summary
    result.server_decode_cpu_seconds = 0.4
    summary = result.summary()
    assert summary["decode_cpu_ms_per_request"] == pytest.approx(2.0)
    assert summary["other_cpu_ms_per_request"] == pytest.approx(4.5)  # the decode workers' share is in it


@pytest.mark.parametrize(
    ("count", "ranks", "coverage"),
    # The k-th smallest to the k-th largest as published tables give them for 95 %.
    [(6, (1, 6), 0.96875), (9, (2, 8), 0.9609375), (15, (4, 12), 0.96484375), (20, (6, 15), 0.958611)],
)
def test_median_interval_takes_the_ranks_whose_coverage_is_at_least_95_per_cent(
    count: int, ranks: tuple[int, int], coverage: float
) -> None:
    values = [10.0 * rank for rank in range(count, 0, -1)]  # unsorted on purpose
    low, high, covered = median_interval(values)
    assert (low, high) == (10.0 * ranks[0], 10.0 * ranks[1])
    assert covered == pytest.approx(coverage, abs=1e-6)


def test_median_interval_of_too_few_values_is_their_range_with_its_smaller_coverage() -> None:
    assert median_interval([3.0, 1.0, 2.0]) == (1.0, 3.0, 0.75)
