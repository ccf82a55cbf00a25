"""`vision-service --workers N`: N processes on one port, each on its own cores, metrics added up over all of
them, signals passed on, a dead worker replaced; through the real command on loopback."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import httpx
import pytest
from conftest import LiveServer, ServerFactory, encode, solid
from polling import wait_for
from prometheus_client.parser import text_string_to_metric_families

from service.__main__ import serving_processes
from service.core.runtime import CPU, CUDA, ExecutionPlan
from service.http.workers import core_shares, shared_budgets
from service.settings import Settings

WORKERS = 2
# More than this machine may have: the workers divide what they are told, whatever the machine.
CORES = 5
PNG = encode(solid((200, 30, 30)), "PNG")


def workers_of(server: LiveServer) -> list[int]:
    """The supervisor's child processes, by pid."""
    pid = server.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return sorted(int(child) for child in children)


def environment_of(pid: int) -> dict[str, str]:
    entries = Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0")
    return dict(entry.split("=", 1) for entry in entries if "=" in entry)


def requests_counted(server: LiveServer, route: str) -> float:
    text = httpx.get(f"{server.url}/metrics").text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "vision_requests_total" and sample.labels["route"] == route
    )


def classify(server: LiveServer) -> int:
    # A connection per request, so the kernel spreads them over the workers' accepts.
    return httpx.post(f"{server.url}/classify", files={"image": ("x.png", PNG, "image/png")}).status_code


@pytest.fixture(scope="module")
def workers_server(start_server: ServerFactory, test_models_dir: Path) -> LiveServer:
    server = start_server(test_models_dir, workers=WORKERS, cores=CORES)
    wait_for(lambda: len(workers_of(server)) == WORKERS)
    return server


def test_each_worker_gets_its_own_share_of_the_cores() -> None:
    assert core_shares([0, 1, 2, 3, 4], 2) == [{0, 1, 2}, {3, 4}]
    assert core_shares([2, 3], 2) == [{2}, {3}]
    assert core_shares([0], 3) == [{0}, {0}, {0}]


def test_by_default_one_process_per_core_on_cpu_and_one_on_cuda() -> None:
    on_cpu, on_cuda = ExecutionPlan((CPU,), 1, 3), ExecutionPlan((CUDA, CPU), 3, 1)
    assert serving_processes(Settings(cores=3), on_cpu) == 3
    assert serving_processes(Settings(cores=3), on_cuda) == 1
    assert serving_processes(Settings(cores=3, workers=2), on_cuda) == 2


def test_the_workers_divide_the_memory_budgets_but_keep_one_requests_worth() -> None:
    settings = Settings(body_budget_bytes=256 * 2**20, max_upload_bytes=20 * 2**20, pixel_budget=128_000_000)
    assert shared_budgets(settings, 2) == {
        "VISION_BODY_BUDGET_BYTES": str(128 * 2**20),
        "VISION_PIXEL_BUDGET": "64000000",
    }
    assert shared_budgets(settings, 64) == {
        "VISION_BODY_BUDGET_BYTES": str(20 * 2**20),
        "VISION_PIXEL_BUDGET": str(settings.max_request_pixels),
    }


def test_with_no_workers_setting_each_core_gets_a_worker_and_its_share(
    start_server: ServerFactory, test_models_dir: Path
) -> None:
    server = start_server(test_models_dir, workers=0, cores=2, body_budget_bytes=64 * 2**20)
    wait_for(lambda: len(workers_of(server)) == 2)
    told = [environment_of(pid) for pid in workers_of(server)]
    assert [env["VISION_BODY_BUDGET_BYTES"] for env in told] == [str(32 * 2**20)] * 2
    assert all(classify(server) == 200 for _ in range(4))


def test_the_workers_serve_one_port_on_separate_cores(workers_server: LiveServer) -> None:
    pids = workers_of(workers_server)
    assert len(pids) == WORKERS
    shares = [os.sched_getaffinity(pid) for pid in pids]
    assert sorted(map(sorted, shares)) == sorted(map(sorted, core_shares(os.sched_getaffinity(0), WORKERS)))
    assert all(classify(workers_server) == 200 for _ in range(6))


def test_the_workers_divide_the_cores_between_their_pools(workers_server: LiveServer) -> None:
    told = sorted(int(environment_of(pid)["VISION_CORES"]) for pid in workers_of(workers_server))
    assert told == [2, 3]
    runs = re.findall(r"execution plan: .* x (\d+) concurrent runs", workers_server.logs())
    assert sorted(map(int, runs)) == [2, 3]


def test_metrics_add_up_every_workers_requests(workers_server: LiveServer) -> None:
    before = requests_counted(workers_server, "/classify")
    sent = 20
    assert all(classify(workers_server) == 200 for _ in range(sent))
    # Whichever worker answers the scrape, it counts the requests of all of them.
    assert [requests_counted(workers_server, "/classify") - before for _ in range(4)] == [sent] * 4


def test_sighup_reloads_every_worker(workers_server: LiveServer) -> None:
    os.kill(workers_server.process.pid, signal.SIGHUP)
    wait_for(lambda: workers_server.logs().count("SIGHUP: reloading the model repository") >= WORKERS)


def test_a_dead_worker_is_replaced_and_sigterm_stops_them_all(
    start_server: ServerFactory, test_models_dir: Path
) -> None:
    server = start_server(test_models_dir, workers=WORKERS, cores=CORES)
    wait_for(lambda: len(workers_of(server)) == WORKERS)
    first, survivor = workers_of(server)
    os.kill(first, signal.SIGKILL)
    wait_for(lambda: len(workers_of(server)) == WORKERS and first not in workers_of(server))
    server.wait()
    assert classify(server) == 200
    pids = workers_of(server)
    assert survivor in pids
    server.process.terminate()
    assert server.process.wait(timeout=30) == 0
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
