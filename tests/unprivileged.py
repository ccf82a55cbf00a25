"""File access as a user who is not root, for tests of what the service does with unreadable files: root
passes every permission bit, and the service runs as uid 10001 in its image."""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
NOBODY = 65534


def read_as_nobody(work: Callable[[], T]) -> T:
    """`work()` in a thread whose file-system identity is uid and gid 65534 when the tests run as root (the
    kernel then drops its permission-overriding capabilities, for that thread alone); as is otherwise."""
    outcome: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            if os.geteuid() == 0:
                libc = ctypes.CDLL(None, use_errno=True)
                # setfsuid and setfsgid act on the calling thread only, unlike setuid.
                libc.setfsgid(NOBODY)
                libc.setfsuid(NOBODY)
            outcome.append(work())
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return outcome[0]
