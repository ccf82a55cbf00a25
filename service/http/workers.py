"""`vision-service --workers N`: N serving processes on one port, each with its own event loop.

One event loop spends CPU on every request, and the threads of one process share one GIL, so on a machine
with several cores one process runs out of loop before the cores run out of work. The supervisor binds the
port (a socket per worker), starts each worker as `vision-service` on its inherited socket (a fresh
interpreter: nothing of the supervisor's state is copied), gives each its own share of the cores, forwards
signals (SIGTERM drains every worker, SIGHUP reloads every worker's models), and restarts a worker that dies.
The workers' Prometheus metrics meet in one directory, so any worker's `/metrics` answers for all of them.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType

from prometheus_client import multiprocess

from service.observability.metrics import METRICS_DIR_VARIABLE
from service.settings import Settings

logger = logging.getLogger("vision.workers")

LISTEN_FD_OPTION = "--listen-fd"
# A worker that dies this soon after its start, this many times in a row, will not start: give up.
QUICK_DEATH_SECONDS = 10.0
QUICK_DEATHS = 3
RESTART_PAUSE_SECONDS = 1.0
_PR_SET_PDEATHSIG = 1


def core_shares(cores: Sequence[int], workers: int) -> list[set[int]]:
    """Each worker's cores: the machine's split into `workers` contiguous shares, or all of them for every
    worker when there are fewer cores than workers."""
    ordered = sorted(cores)
    if workers > len(ordered):
        return [set(ordered) for _ in range(workers)]
    size, extra = divmod(len(ordered), workers)
    shares, start = [], 0
    for index in range(workers):
        end = start + size + (1 if index < extra else 0)
        shares.append(set(ordered[start:end]))
        start = end
    return shares


def shared_budgets(settings: Settings, workers: int) -> dict[str, str]:
    """Each worker's share of the budgets that bound the machine's memory (bodies and unread answers, pixels
    in flight), as VISION_* variables: N workers hold what one process would. A share never falls below one
    request's worth, which the settings already require of the whole."""
    return {
        "VISION_BODY_BUDGET_BYTES": str(
            max(settings.body_budget_bytes // workers, settings.max_upload_bytes)
        ),
        "VISION_PIXEL_BUDGET": str(max(settings.pixel_budget // workers, settings.max_request_pixels)),
    }


def bind(host: str, port: int, count: int) -> list[socket.socket]:
    """One listening socket per worker on the same port (SO_REUSEPORT): the kernel spreads new connections
    over them. On one shared socket, whichever worker accepts first takes a whole burst of connections, and
    keep-alive clients then stay on it (measured: two workers served no more than one)."""
    return [_listening(host, port) for _ in range(count)]


def _listening(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


@dataclass
class _Worker:
    index: int
    process: subprocess.Popen[bytes]
    started: float = field(default_factory=time.monotonic)


class Supervisor:
    """Starts a copy of `command` per socket (given its descriptor) and keeps them running. The supervisor
    keeps every socket open, so connections to a worker being restarted wait in its backlog."""

    def __init__(
        self,
        command: Sequence[str],
        sockets: Sequence[socket.socket],
        cores: int,
        budgets: Mapping[str, str],
    ) -> None:
        self._command = list(command)
        self._budgets = dict(budgets)
        self._sockets = list(sockets)
        self._shares = core_shares(os.sched_getaffinity(0), len(self._sockets))
        # What each worker sizes its pools for: under a CPU quota that is less than the cores it is pinned to.
        self._core_counts = [len(share) for share in core_shares(range(cores), len(self._sockets))]
        self._workers: dict[int, _Worker] = {}
        self._stopping = False
        self._quick_deaths = 0
        self._metrics_dir = tempfile.mkdtemp(prefix="vision-metrics-")

    def run(self) -> int:
        """Serve until a signal stops every worker; the exit status is 0 unless workers could not start."""
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._forward)
        try:
            for index in range(len(self._shares)):
                self._start(index)
            logger.info("supervising %d workers on %s", len(self._shares), self._sockets[0].getsockname())
            return self._watch()
        finally:
            for sock in self._sockets:
                sock.close()
            shutil.rmtree(self._metrics_dir, ignore_errors=True)

    def _watch(self) -> int:
        status = 0
        while self._workers:
            pid, code = os.wait()
            worker = self._workers.pop(pid, None)
            if worker is None:
                continue
            _mark_dead(pid, self._metrics_dir)
            if self._stopping:
                continue
            quick = time.monotonic() - worker.started < QUICK_DEATH_SECONDS
            self._quick_deaths = self._quick_deaths + 1 if quick else 0
            logger.error("worker %d (pid %d) exited with %s", worker.index, pid, _exit_reason(code))
            if self._quick_deaths >= QUICK_DEATHS:
                logger.error("workers die as soon as they start: stopping")
                status = 1
                self._stop(signal.SIGTERM)
                continue
            time.sleep(RESTART_PAUSE_SECONDS)
            if not self._stopping:  # a signal may have come during the pause
                self._start(worker.index)
        return status

    def _start(self, index: int) -> None:
        fd = self._sockets[index].fileno()
        cores = self._core_counts[index]
        env = {
            **os.environ,
            **self._budgets,
            METRICS_DIR_VARIABLE: self._metrics_dir,
            "VISION_WORKERS": "1",
            "VISION_CORES": str(cores),
        }
        share = self._shares[index]
        process = subprocess.Popen(
            [*self._command, LISTEN_FD_OPTION, str(fd)],
            pass_fds=[fd],
            env=env,
            # A process group of its own: a terminal's Ctrl+C reaches only the supervisor, which passes it on.
            process_group=0,
            preexec_fn=lambda: _become_worker(share),
        )
        self._workers[process.pid] = _Worker(index, process)
        logger.info(
            "worker %d started: pid %d on cores %s, pools sized for %d",
            index,
            process.pid,
            sorted(share),
            cores,
        )

    def _forward(self, signum: int, _frame: FrameType | None) -> None:
        self._stop(signum)

    def _stop(self, signum: int) -> None:
        """Pass `signum` to every worker; any but SIGHUP (reload) ends the supervision."""
        if signum != signal.SIGHUP:
            self._stopping = True
        for worker in list(self._workers.values()):
            with contextlib.suppress(ProcessLookupError):
                worker.process.send_signal(signum)


def _become_worker(cores: set[int]) -> None:
    """In the worker, before it runs: its share of the cores, and SIGTERM should the supervisor die."""
    os.sched_setaffinity(0, cores)
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _mark_dead(pid: int, metrics_dir: str) -> None:
    """Drop a dead worker's live gauges (requests in progress, queue depths) from the sums."""
    multiprocess.mark_process_dead(pid, metrics_dir)


def _exit_reason(code: int) -> str:
    if os.WIFSIGNALED(code):
        return f"signal {signal.Signals(os.WTERMSIG(code)).name}"
    return f"status {os.waitstatus_to_exitcode(code)}"


def listening_socket(fd: int) -> socket.socket:
    """A worker's view of the supervisor's socket, family and type read from the descriptor itself."""
    return socket.socket(fileno=fd)
