"""CPU per thread from /proc: the event-loop thread's share is told apart from the worker threads'; a
server stops with every process of its group, so none takes CPU from the next one measured."""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
import urllib.request
from pathlib import Path

from benchmarks import servers
from benchmarks.servers import thread_cpu_seconds

ROOT = Path(__file__).resolve().parents[2]

# A server whose worker takes a second to stop after SIGTERM, as LitServe's and BentoML's workers do.
SLOW_WORKER_SERVER = """
import http.server, subprocess, sys
worker = (
    "import signal, sys, time; "
    "signal.signal(signal.SIGTERM, lambda *_: (time.sleep(1), sys.exit(0))); time.sleep(60)"
)
subprocess.Popen([sys.executable, "-c", worker])
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), http.server.SimpleHTTPRequestHandler).serve_forever()
"""


def burn(seconds: float) -> None:
    deadline = time.thread_time() + seconds
    while time.thread_time() < deadline:
        pass


def test_thread_cpu_counts_only_that_thread() -> None:
    pid = os.getpid()
    before = thread_cpu_seconds(pid, pid)
    worker = threading.Thread(target=burn, args=(0.3,))
    worker.start()
    worker.join()
    after_worker = thread_cpu_seconds(pid, pid)
    burn(0.3)
    after_main = thread_cpu_seconds(pid, pid)
    assert after_worker - before < 0.15
    assert after_main - after_worker >= 0.2


def test_thread_of_a_gone_process_counts_nothing() -> None:
    assert thread_cpu_seconds(2**22 + 1, 2**22 + 1) == 0.0


def test_a_server_stops_only_once_its_workers_are_gone(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-c", SLOW_WORKER_SERVER, str(port)]
    server = servers.start("slow", command, port=port, ready_path="/", env={}, log_dir=tmp_path, cwd=tmp_path)
    assert len(servers.live_group_members(server.process.pid)) == 2
    server.stop()
    assert servers.live_group_members(server.process.pid) == []


def test_under_a_supervisor_the_loop_cpu_is_every_workers_main_thread_and_decode_cpu_their_decoders(
    tmp_path: Path,
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "service", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"]
    env = {"VISION_LOG_LEVEL": "warning", "VISION_DRAIN_SECONDS": "0"}
    server = servers.start(
        "service", command, port=port, ready_path="/healthz/ready", env=env, log_dir=tmp_path, cwd=ROOT
    )
    try:
        for _ in range(40):
            urllib.request.urlopen(f"http://127.0.0.1:{port}/models").read()
        serving = [
            pid
            for pid in servers.process_tree(server.process.pid)
            if b"--listen-fd" in Path(f"/proc/{pid}/cmdline").read_bytes()
        ]
        loops = sum(thread_cpu_seconds(pid, pid) for pid in serving)
        assert len(serving) == 2
        assert server.loop_cpu() >= loops > thread_cpu_seconds(server.process.pid, server.process.pid)
        # One decode worker per worker (one core each here at most), started with its codecs warmed up.
        decoders = [
            pid
            for pid in servers.process_tree(server.process.pid)
            if b"service.core.decoding" in Path(f"/proc/{pid}/cmdline").read_bytes()
        ]
        assert decoders
        assert server.decode_cpu() >= servers.cpu_seconds(decoders) > 0
        assert server.decode_cpu() < server.cpu() - server.loop_cpu()
    finally:
        server.stop()
