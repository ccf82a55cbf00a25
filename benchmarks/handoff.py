"""What it costs to hand a decoded image to another process and get its answer back, by each way of doing it.

A front end that feeds one runner process (one per GPU) pays this per image. The payload is the model input
the engine prepares (float32, NHWC); the answer is six float32s, as a classifier's would be. Each round trip:
the front end puts the image where the runner can read it, the runner copies it into its batch buffer and
answers with the buffer's first and last three values, so the front end can tell the image arrived whole.
"""

from __future__ import annotations

import multiprocessing
import statistics
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import numpy as np

SHAPES = {"64x64x3": (64, 64, 3), "224x224x3": (224, 224, 3)}
METHODS = {
    "shared_memory": "shared-memory slot + pipe notification",
    "pipe": "pipe, the bytes copied through",
    "socketpair": "socketpair, the bytes copied through",
    "queue": "multiprocessing.Queue (pickle)",
}
ANSWER_BYTES = 6 * 4
WARM_UP = 50


def _runner(method: str, shape: tuple[int, ...], inbound: Any, outbound: Any, slot: str | None) -> None:
    """The runner's side: take each image into its batch buffer, answer with its ends (ANSWER_BYTES)."""
    batch_row = np.empty(shape, np.float32)
    if method == "queue":
        while (image := inbound.get()) is not None:
            np.copyto(batch_row, image)
            outbound.put(_ends(batch_row))
        return
    memory = SharedMemory(slot) if slot else None
    received = bytearray(batch_row.nbytes if memory is None else 1)
    while inbound.recv_bytes_into(received):
        if memory is not None:
            np.copyto(batch_row, np.ndarray(shape, np.float32, memory.buf))
        else:
            np.copyto(batch_row, np.frombuffer(received, np.float32).reshape(shape))
        outbound.send_bytes(_ends(batch_row))
    if memory is not None:
        memory.close()


def _ends(image: np.ndarray) -> bytes:
    flat = image.reshape(-1)
    return np.concatenate([flat[:3], flat[-3:]]).tobytes()


def _round_trips(
    send: Callable[[], None], receive: Callable[[], bytes], trips: int
) -> tuple[list[float], bytes]:
    """Seconds per round trip after WARM_UP untimed ones, and the last answer."""
    for _ in range(WARM_UP):
        send()
        receive()
    times = []
    answer = b""
    for _ in range(trips):
        started = time.perf_counter()
        send()
        answer = receive()
        times.append(time.perf_counter() - started)
    return times, answer


def measure(method: str, shape: tuple[int, ...], trips: int) -> float:
    """Median µs per round trip of one image of `shape` by `method`."""
    context = multiprocessing.get_context("spawn")
    image = np.random.default_rng(0).random(shape, dtype=np.float32)
    memory = SharedMemory(create=True, size=image.nbytes) if method == "shared_memory" else None
    if method == "queue":
        to_runner: Any = context.Queue()
        from_runner: Any = context.Queue()
        runner_ends: tuple[Any, Any] = (to_runner, from_runner)
    else:
        duplex = method == "socketpair"
        inbound, to_runner = context.Pipe(duplex=duplex)
        from_runner, outbound = context.Pipe(duplex=duplex)
        runner_ends = (inbound, outbound)
    runner = context.Process(
        target=_runner, args=(method, shape, *runner_ends, memory.name if memory else None), daemon=True
    )
    runner.start()
    try:
        times, answer = _round_trips(*_front_end(method, image, to_runner, from_runner, memory), trips)
    finally:
        if method == "queue":
            to_runner.put(None)
        else:
            to_runner.send_bytes(b"")
        runner.join(timeout=10)
        if memory is not None:
            memory.close()
            memory.unlink()
    if answer != _ends(image):
        raise RuntimeError(f"{method}: the runner answered for another image than the one sent")
    return statistics.median(times) * 1e6


def _front_end(
    method: str, image: np.ndarray, to_runner: Any, from_runner: Any, memory: SharedMemory | None
) -> tuple[Callable[[], None], Callable[[], bytes]]:
    """How the front end sends `image` and waits for its answer, by `method`."""
    if method == "queue":
        return lambda: to_runner.put(image), from_runner.get
    receive = _receiver(from_runner, bytearray(ANSWER_BYTES))
    if memory is not None:
        slot = np.ndarray(image.shape, np.float32, memory.buf)

        def send_slot() -> None:
            np.copyto(slot, image)
            to_runner.send_bytes(b"\x01")

        return send_slot, receive
    return lambda: to_runner.send_bytes(image.data), receive


def _receiver(connection: Connection, answer: bytearray) -> Callable[[], bytes]:
    def receive() -> bytes:
        connection.recv_bytes_into(answer)
        return bytes(answer)

    return receive


def measure_all(trips: int = 2000, rounds: int = 3) -> dict[str, dict[str, float]]:
    """Median µs per round trip for every method and shape: the lowest of `rounds` rounds, taken in turn, so
    that a busy moment of a shared machine does not count against one method alone."""
    found: dict[str, dict[str, list[float]]] = {method: {label: [] for label in SHAPES} for method in METHODS}
    for _ in range(rounds):
        for method, by_shape in found.items():
            for label, times in by_shape.items():
                times.append(measure(method, SHAPES[label], trips))
    return {
        method: {label: round(min(times), 1) for label, times in by_shape.items()}
        for method, by_shape in found.items()
    }
