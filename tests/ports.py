"""Loopback ports for the servers tests start. A port is checked free, closed, then bound by a server a
second later. The kernel hands out its ephemeral range to port-0 binds and outgoing connections, and
pytest-xdist runs sibling workers beside this one: either could take the port in that second. So each
worker walks a block of its own below the ephemeral range instead."""

from __future__ import annotations

import os
import random
import socket
from pathlib import Path

# Above tests/threaded_server.py's 18100-18199, which binds and holds its sockets.
FIRST_PORT = 20_000
BLOCK = 1_000
# The last ports of a worker's block are the deployment checks' (VISION_CHECK_PORTS, deploy/checks/procs.py).
CHECK_PORTS = 100
CHECK_PORTS_VARIABLE = "VISION_CHECK_PORTS"


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def _worker_index() -> int:
    """gw3 -> 3; a run without xdist is worker 0."""
    return int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)


def _block() -> range | None:
    low = FIRST_PORT + _worker_index() * BLOCK
    return range(low, low + BLOCK) if low + BLOCK <= _ephemeral_start() else None


class PortWalk:
    """This worker's ports in turn, from a random start (a second suite beside this one starts elsewhere),
    skipping any that something already holds."""

    def __init__(self, ports: range | None) -> None:
        self.ports = ports
        self.position = random.randrange(len(ports)) if ports else 0

    def next_free(self) -> int:
        if self.ports is None:
            return _bound_port(0)  # too many workers for blocks below the ephemeral range
        for _ in range(len(self.ports)):
            port = self.ports[self.position % len(self.ports)]
            self.position += 1
            try:
                return _bound_port(port)
            except OSError:
                continue
        raise RuntimeError(f"no free loopback port in {self.ports.start}-{self.ports.stop - 1}")


def _bound_port(port: int) -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        return sock.getsockname()[1]


_block_of_this_worker = _block()
_walk = PortWalk(None if _block_of_this_worker is None else _block_of_this_worker[:-CHECK_PORTS])


def free_port() -> int:
    """A loopback port nothing listens on, which no sibling worker will pick."""
    return _walk.next_free()


def reserve_check_ports() -> None:
    """Point the deployment checks at this worker's own ports, unless the caller chose a range."""
    if _block_of_this_worker is not None and CHECK_PORTS_VARIABLE not in os.environ:
        checks = _block_of_this_worker[-CHECK_PORTS:]
        os.environ[CHECK_PORTS_VARIABLE] = f"{checks.start}-{checks.stop - 1}"
