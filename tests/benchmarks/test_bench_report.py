"""The issue's bars are judged from the numbers: ratios against the limit, naive and peer, and shedding."""

from __future__ import annotations

from typing import Any

from benchmarks.report import against_section, all_bars, cpu_split, latency_bars, throughput_bars


def _level(clients: int, throughput: float, **errors: int) -> dict[str, Any]:
    return {
        "concurrency": clients,
        "throughput": throughput,
        "p50_ms": 10.0,
        "p99_ms": 20.0,
        "requests": 100,
        "errors": errors,
    }


def _results(service_16: float, shed: int = 5, timeouts: int = 0) -> dict[str, Any]:
    service = {
        task: [_level(16, service_16), _level(64, service_16, **{"503": shed, "timeout": timeouts})]
        for task in ("classify", "detect", "segment")
    }
    return {
        "models": {},
        "inprocess": {
            task: [{"streams": 2, "threads": 1, "batch": 4, "images_per_second": 100.0}]
            for task in ("classify", "detect")
        },
        "service": {"levels": service, "seconds_to_ready": 1.0, "rss_mb_ready": 300.0},
        "naive": {"levels": {task: [_level(16, 10.0)] for task in ("classify", "detect")}},
        "peer": {"levels": {task: [_level(16, 50.0)] for task in ("classify", "detect")}},
    }


def test_throughput_bars_pass_at_and_above_the_ratios() -> None:
    bars = throughput_bars(_results(service_16=90.0))
    assert [bar.passed for bar in bars] == [True, True, True] * 2
    assert bars[0].measured == "0.90 x"


def test_throughput_bars_fail_below_the_limit_ratio() -> None:
    bars = throughput_bars(_results(service_16=80.0))
    assert [bar.passed for bar in bars[:3]] == [False, True, True]


def test_shedding_needs_503s_and_no_time_outs() -> None:
    shed = [bar for bar in latency_bars(_results(90.0, shed=0)) if "sheds" in bar.claim]
    assert all(bar.passed is False for bar in shed)
    timed_out = [bar for bar in latency_bars(_results(90.0, shed=3, timeouts=1)) if "sheds" in bar.claim]
    assert all(bar.passed is False for bar in timed_out)
    fine = [bar for bar in latency_bars(_results(90.0, shed=3)) if "sheds" in bar.claim]
    assert all(bar.passed for bar in fine)


def test_missing_sides_are_not_measured_rather_than_passed() -> None:
    results = _results(90.0)
    del results["peer"]
    verdicts = {bar.claim: bar.passed for bar in all_bars(results)}
    assert verdicts["/classify at 16 clients >= 1.2 x BentoML peer"] is None
    assert verdicts["INT8 classifier faster, accuracy within 1 point"] is None


def test_cpu_split_sits_beside_the_in_process_cost_per_image() -> None:
    results = _results(90.0)
    at_16 = results["service"]["levels"]["classify"][0]
    at_16.update(loop_cpu_ms_per_request=1.6, other_cpu_ms_per_request=4.5)
    results["inprocess"]["classify"][0]["images_per_cpu_second"] = 250.0
    (line, _) = cpu_split(results, "classify")
    assert "1.60 ms of CPU per request on its event-loop thread" in line
    assert "4.50 ms on its worker threads" in line
    assert "4.00 ms per image" in line
    assert cpu_split(results, "detect") == []


def test_the_comparison_with_an_earlier_commit_shows_each_side_per_route() -> None:
    figures = {"loop_cpu_ms_per_request": 0.9, "other_cpu_ms_per_request": 2.25, "throughput": 450.0}
    earlier = {"loop_cpu_ms_per_request": 1.1, "other_cpu_ms_per_request": 2.5, "throughput": 430.0}
    results = {
        "against": {
            "clients": 16,
            "seconds": 8.0,
            "rounds": 3,
            "date": "2026-12-01T10:00:00+00:00",
            "sides": {"this tree": {"commit": "a" * 40}, "bbbbbbb": {"commit": "b" * 40}},
            "median": {"this tree": {"classify": figures}, "bbbbbbb": {"classify": earlier}},
            "runs": {"this tree": [{"classify": figures}] * 3, "bbbbbbb": [{"classify": earlier}] * 3},
        }
    }
    lines = against_section(results)
    assert lines[0] == "## Against an earlier commit"
    assert "| route | figure | this tree (aaaaaaa) | bbbbbbb |" in lines
    assert "| /classify | event-loop CPU, ms/request | 0.900 | 1.100 |" in lines
    assert "| /classify | responses/s | 450.0 | 430.0 |" in lines
    rounds = "this tree 0.900, 0.900, 0.900; bbbbbbb 1.100, 1.100, 1.100"
    assert f"- /classify event-loop CPU by round, ms/request: {rounds}" in lines
    assert against_section({}) == []
