"""Loopback ports for the servers tests start. A port is checked free, closed, then bound by a server a
second later. The kernel hands out its ephemeral range to port-0 binds and outgoing connections, and
pytest-xdist runs sibling workers beside this one: either could take the port in that second. So each
worker walks a block of its own below the ephemeral range instead. (The deployment checks keep the kernel's
pick: their scripts scan VISION_CHECK_PORTS from its start, which two suites side by side would share.)"""

from __future__ import annotations

import os
import random
import socket
from pathlib import Path

# Above tests/threaded_server.py's 18100-18199, which binds and holds its sockets.
FIRST_PORT = 20_000
BLOCK = 1_000


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
_walk = PortWalk(_block_of_this_worker)


def free_port() -> int:
    """A loopback port nothing listens on, which no sibling worker will pick."""
    return _walk.next_free()
