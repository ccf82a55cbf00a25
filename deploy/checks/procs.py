"""Processes and loopback ports for the deployment checks: start, wait until ready, stop, show the log."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

# Checks share machines with other work: keep to a port range (VISION_CHECK_PORTS="first-last") when told to.
PORT_RANGE_VARIABLE = "VISION_CHECK_PORTS"


def free_port(taken: Sequence[int] = ()) -> int:
    """A loopback port nothing listens on, from VISION_CHECK_PORTS when set, else one the kernel picks."""
    spec = os.environ.get(PORT_RANGE_VARIABLE)
    candidates = range(int(spec.split("-")[0]), int(spec.split("-")[1]) + 1) if spec else [0]
    for port in candidates:
        if port in taken:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise RuntimeError(f"no free loopback port in {spec}")


class Process:
    """A child process whose output goes to a log file, stopped with its whole process group."""

    def __init__(self, argv: Sequence[str], *, env: dict[str, str], cwd: Path, log_path: Path) -> None:
        self.argv = list(argv)
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                self.argv, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL: the harshest failure a replica can have."""
        if self.alive():
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait()

    def stop(self, timeout: float = 10) -> None:
        if not self.alive():
            return
        os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def wait_until_ok(url: str, process: Process, timeout: float) -> None:
    """Poll `url` until it answers 200; fail early with the log when the process dies."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if not process.alive():
            raise RuntimeError(
                f"{process.argv[0]} exited with {process.popen.returncode}:\n{process.log_tail()}"
            )
        try:
            response = httpx.get(url, timeout=2)
        except httpx.HTTPError as exc:
            last = repr(exc)
        else:
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text[:200]}"
        time.sleep(0.25)
    raise RuntimeError(f"{url} not ready after {timeout:.0f}s ({last}):\n{process.log_tail()}")
