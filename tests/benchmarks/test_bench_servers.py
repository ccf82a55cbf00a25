"""CPU per thread from /proc: the event-loop thread's share is told apart from the worker threads'."""

from __future__ import annotations

import os
import threading
import time

from benchmarks.servers import thread_cpu_seconds


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
