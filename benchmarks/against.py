"""This tree against an earlier commit, in the same minutes: the service's CPU per request, split between its
event-loop thread and its other threads, and throughput, at one load level per task.

The earlier commit is checked out in a temporary git worktree and served by the same interpreter and venv
from there (`python -m service` resolves `service` from its working directory). The two servers take turns,
`rounds` times with who goes first alternating, so load that comes and goes on a shared machine falls on
both alike; the report takes the median of the rounds.
"""

from __future__ import annotations

import contextlib
import logging
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks import servers, wrk

logger = logging.getLogger("benchmarks.against")

COMPARED = ("loop_cpu_ms_per_request", "other_cpu_ms_per_request", "throughput")


@dataclass(frozen=True)
class Side:
    """One tree to serve: its label, where it is checked out, and the commit it is at."""

    label: str
    root: Path
    commit: str


def commit_of(root: Path, ref: str = "HEAD") -> str:
    done = subprocess.run(["git", "rev-parse", ref], cwd=root, capture_output=True, text=True, check=True)
    return done.stdout.strip()


@contextlib.contextmanager
def worktree(root: Path, ref: str) -> Iterator[Path]:
    """`ref` checked out in a temporary worktree, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="bench-against-") as parent:
        path = Path(parent) / "tree"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(path), ref], cwd=root, check=True, capture_output=True
        )
        try:
            yield path
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=root, check=False)


@dataclass(frozen=True)
class Load:
    """What each side is measured under: the paths (by task), the uploads, the models and the level."""

    paths: dict[str, str]
    jpegs: Sequence[bytes]
    models_dir: Path
    port: int
    clients: int
    seconds: float
    log_dir: Path


def measure_side(side: Side, load: Load) -> dict[str, dict[str, Any]]:
    """Start `side`'s service, load each path at `load.clients` clients for `load.seconds`, stop it."""
    command = [sys.executable, "-m", "service", "--host", "127.0.0.1", "--port", str(load.port)]
    env = {
        "VISION_MODELS_DIR": str(load.models_dir),
        "VISION_LOG_LEVEL": "warning",
        "VISION_DRAIN_SECONDS": "0",
        "PYTHONPATH": str(side.root),
    }
    server = servers.start(
        side.label,
        command,
        port=load.port,
        ready_path="/healthz/ready",
        env=env,
        log_dir=load.log_dir,
        cwd=side.root,
    )
    try:
        results = {}
        for task, path in load.paths.items():
            result = wrk.measure(
                wrk.Target("127.0.0.1", load.port, path),
                load.jpegs,
                concurrency=load.clients,
                duration=load.seconds,
                server_cpu=server.cpu,
                server_loop_cpu=server.loop_cpu,
                server_decode_cpu=server.decode_cpu,
            )
            results[task] = result.summary()
            logger.info("%s %s x%d: %s", side.label, path, load.clients, results[task])
        return results
    finally:
        server.stop()


def compare(sides: Sequence[Side], load: Load, rounds: int) -> dict[str, Any]:
    """Both sides in turn, `rounds` times, who goes first alternating; every round kept, and the median of
    each compared figure."""
    runs: dict[str, list[dict[str, dict[str, Any]]]] = {side.label: [] for side in sides}
    for turn in range(rounds):
        for side in sides if turn % 2 == 0 else list(reversed(sides)):
            runs[side.label].append(measure_side(side, load))
    return {
        "clients": load.clients,
        "seconds": load.seconds,
        "rounds": rounds,
        "sides": {side.label: {"commit": side.commit} for side in sides},
        "runs": runs,
        "median": {
            label: {
                task: {key: statistics.median(run[task][key] for run in measured) for key in COMPARED}
                for task in load.paths
            }
            for label, measured in runs.items()
        },
    }
