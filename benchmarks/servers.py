"""Start a server under test as its own process tree, time it to ready, read its RSS and CPU from /proc."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from service.core import decoding
from service.http.workers import LISTEN_FD_OPTION

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def process_tree(pid: int) -> list[int]:
    """`pid` and all its descendants (BentoML and uvicorn reloaders fork workers)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def _stat_cpu_seconds(stat: Path) -> float:
    """User + system CPU time from a /proc `stat` file, in seconds (0 once the process or thread is gone)."""
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU time of these processes, in seconds."""
    return sum(_stat_cpu_seconds(Path(f"/proc/{pid}/stat")) for pid in pids)


def thread_cpu_seconds(pid: int, tid: int) -> float:
    """User + system CPU time of one thread of `pid`, in seconds (0 once it is gone)."""
    return _stat_cpu_seconds(Path(f"/proc/{pid}/task/{tid}/stat"))


def _command_line(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []


def rss_bytes(pids: Sequence[int]) -> int:
    """Resident set size of these processes added up (shared pages counted once per process)."""
    total = 0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_BYTES
        except OSError:
            continue
    return total


@dataclass
class Server:
    """A server process started by the benchmark; stopped with its whole process group."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    seconds_to_ready: float
    log: Path

    def cpu(self) -> float:
        return cpu_seconds(process_tree(self.process.pid))

    def loop_cpu(self) -> float:
        """CPU time of the main threads that run event loops: the server's own, or under a supervisor
        (`vision-service --workers N`) each worker's, the processes started on an inherited socket."""
        tree = process_tree(self.process.pid)
        serving = [pid for pid in tree if LISTEN_FD_OPTION.encode() in _command_line(pid)]
        return sum(thread_cpu_seconds(pid, pid) for pid in serving or [self.process.pid])

    def decode_cpu(self) -> float:
        """CPU time of the decode worker processes (`python -m service.core.decoding`) under the server, its
        workers' included; a decode worker killed and replaced takes its time with it."""
        tree = process_tree(self.process.pid)
        return cpu_seconds([pid for pid in tree if decoding.__name__.encode() in _command_line(pid)])

    def rss(self) -> int:
        return rss_bytes(process_tree(self.process.pid))

    def stop(self) -> None:
        """Stop the whole group, and wait for it: a worker that outlives its parent (LitServe's, BentoML's)
        would take CPU from the next server measured."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if not _group_ends(self.process.pid, timeout=15):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            _group_ends(self.process.pid, timeout=5)


def live_group_members(group: int) -> list[int]:
    """The processes of a process group still running (zombies left out: they hold no CPU)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def _group_ends(group: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while live_group_members(group):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start(
    name: str,
    command: Sequence[str],
    *,
    port: int,
    ready_path: str,
    env: Mapping[str, str],
    log_dir: Path,
    timeout: float = 120.0,
    cwd: Path | None = None,
) -> Server:
    """Launch `command` in its own session and poll `ready_path` every 20 ms until it answers 200."""
    log = log_dir / f"{name}.log"
    handle = log.open("wb")
    started = time.perf_counter()
    process = subprocess.Popen(
        list(command),
        env={**os.environ, **env},
        stdout=handle,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        cwd=cwd,
    )
    url = f"http://127.0.0.1:{port}{ready_path}"
    while not _ready(url):
        if process.poll() is not None or time.perf_counter() - started > timeout:
            server = Server(name, process, port, float("nan"), log)
            server.stop()
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{name} did not become ready on port {port}:\n{tail}")
        time.sleep(0.02)
    return Server(name, process, port, time.perf_counter() - started, log)
