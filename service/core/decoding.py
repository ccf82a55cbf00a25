"""Uploads decoded in worker processes, as browsers decode untrusted images: whatever the file, a decode is
capped in memory (the worker's address space) and in time, and stops when its request is given up (the
worker is killed and replaced).

Each decode thread borrows one idle worker for one image: it writes the upload to the worker's stdin and
waits on its stdout, with the GIL released. Measured on 2 cores with a 640x427 photo to a 64x64 input, the
round trip adds 0.3 ms of latency and takes the decode's 0.9 ms of CPU out of the serving process, which
keeps 0.09 ms. `python -m service.core.decoding` is the worker.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import logging
import os
import pickle
import queue
import resource
import select
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from PIL import Image

from service.core.errors import CorruptImageError, ImageTooLargeError, ServiceError
from service.core.imaging import ImageLimits, PreparedImage, prepare_image

if TYPE_CHECKING:  # a type only: decode workers need not import pydantic
    from service.api.terms import ResizeMode

logger = logging.getLogger("vision.decoding")

# How often a waiting decode thread looks whether its request was given up: the most a dead request's
# decode runs on for.
POLL_SECONDS = 0.05
# What one decode may take by default. An honest 40-megapixel PNG needs about 250 MiB and under a second.
DECODE_MEMORY_BYTES = 512 * 2**20
DECODE_SECONDS = 10.0
_LENGTH = struct.Struct("<Q")
# Linux's default ceiling for an unprivileged pipe (/proc/sys/fs/pipe-max-size).
PIPE_BYTES = 2**20


@dataclass(frozen=True)
class DecodeJob:
    """One upload and what its model needs of it: everything a worker process gets."""

    data: bytes
    width: int
    height: int
    channels: int
    resize: ResizeMode
    limits: ImageLimits
    preview_side: int | None = None

    def run(self) -> PreparedImage:
        """The decode itself, in this thread (a worker's, or a caller's that trusts the bytes)."""
        return prepare_image(
            self.data,
            width=self.width,
            height=self.height,
            channels=self.channels,
            resize=self.resize,
            limits=self.limits,
            preview_side=self.preview_side,
        )


@dataclass(frozen=True)
class DecodeLimits:
    """What one decode may take: address space above a worker's own, and seconds."""

    memory_bytes: int
    seconds: float


DEFAULT_DECODE_LIMITS = DecodeLimits(memory_bytes=DECODE_MEMORY_BYTES, seconds=DECODE_SECONDS)


class Worker:
    """One worker process and its pipes; used by one thread at a time."""

    def __init__(self, limits: DecodeLimits) -> None:
        self.limits = limits
        self._closed = False
        self._process = self._spawn()

    def wait_ready(self) -> None:
        """Block until the worker has its modules loaded and its memory capped."""
        if self._stdout.read(len(_READY)) != _READY:
            status = self._process.wait()
            raise RuntimeError(f"a decode worker failed to start (exit status {status})")

    def decode(self, job: DecodeJob, given_up: Callable[[], bool]) -> PreparedImage:
        """`job` decoded in the worker; ImageTooLarge past the time or memory limit, and the worker is
        replaced when it is killed or dies."""
        deadline = time.monotonic() + self.limits.seconds
        try:
            _write_frame(self._stdin, pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL))
            while not _readable(self._stdout, POLL_SECONDS):
                if given_up() or time.monotonic() > deadline:
                    break
            else:
                return _result(*pickle.loads(_read_frame(self._stdout)))
        except (OSError, EOFError, pickle.UnpicklingError):
            self._replace("it died decoding an image")
            raise CorruptImageError("the image made the decoder fail") from None
        if given_up():
            self._replace("its request was given up")
            raise ImageTooLargeError("the request was given up while its image was decoding")
        self._replace(f"a decode ran over {self.limits.seconds:g} s")
        raise ImageTooLargeError(
            f"decoding the image took longer than {self.limits.seconds:g} s",
            detail={"decode_seconds": self.limits.seconds},
        )

    def close(self) -> None:
        self._closed = True
        self._stop()

    def _stop(self) -> None:
        self._process.kill()
        self._process.wait()
        for pipe in (self._stdin, self._stdout):
            # Closing flushes what a write left half sent, which fails on a pipe whose reader is gone.
            with contextlib.suppress(OSError):
                pipe.close()

    @property
    def _stdin(self) -> IO[bytes]:
        return self._process.stdin  # type: ignore[return-value]

    @property
    def _stdout(self) -> IO[bytes]:
        return self._process.stdout  # type: ignore[return-value]

    def _spawn(self) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [sys.executable, "-m", "service.core.decoding", str(self.limits.memory_bytes)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            # A worker decodes in one thread: BLAS thread pools would only map memory under its cap.
            env={**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"},
        )
        for pipe in (process.stdin, process.stdout):
            _widen(pipe)  # type: ignore[arg-type]
        return process

    def _replace(self, why: str) -> None:
        if self._closed:
            return  # the engine is closing: nothing will decode again
        logger.warning("decode worker %d killed: %s; starting another", self._process.pid, why)
        self._stop()
        self._process = self._spawn()
        self.wait_ready()


class Decoders:
    """`count` workers, each lent to one decode thread at a time."""

    def __init__(self, count: int, limits: DecodeLimits) -> None:
        self.count = count
        self.limits = limits
        self._idle: queue.SimpleQueue[Worker] = queue.SimpleQueue()
        self._all: list[Worker] = []

    def start(self) -> None:
        """Start every worker (blocking: about 0.2 s, the workers starting side by side)."""
        workers = [Worker(self.limits) for _ in range(self.count)]
        self._all.extend(workers)
        for worker in workers:
            worker.wait_ready()
            self._idle.put(worker)

    def decode(self, job: DecodeJob, given_up: Callable[[], bool] = lambda: False) -> PreparedImage:
        """`job` decoded by the next idle worker; blocking, so call it from a decode thread."""
        worker = self._idle.get()
        try:
            return worker.decode(job, given_up)
        finally:
            self._idle.put(worker)

    def close(self) -> None:
        for worker in self._all:
            worker.close()


_READY = b"ready\n"


def _widen(pipe: IO[bytes]) -> None:
    """Let a pipe hold a whole upload or answer, as far as the system allows: through the default 64 KiB
    a 100 KB photo takes several wake-ups of each side."""
    with contextlib.suppress(OSError):
        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)


def _result(outcome: str, value: Any) -> PreparedImage:
    """A worker's answer: the decoded image, or its refusal raised again here."""
    if outcome != "ok":
        error_type, message, detail = value
        raise error_type(message, detail=detail)
    return value


def _readable(stream: IO[bytes], seconds: float) -> bool:
    return bool(select.select([stream], [], [], seconds)[0])


def _write_frame(stream: IO[bytes], payload: bytes) -> None:
    stream.write(_LENGTH.pack(len(payload)))
    stream.write(payload)
    stream.flush()


def _read_frame(stream: IO[bytes]) -> bytes:
    header = stream.read(_LENGTH.size)
    if len(header) != _LENGTH.size:
        raise EOFError("the pipe closed")
    (length,) = _LENGTH.unpack(header)
    payload = stream.read(length)
    if len(payload) != length:
        raise EOFError("the pipe closed mid-frame")
    return payload


def _serve(memory_bytes: int) -> None:
    """The worker: decode each job from stdin, answer on stdout, until stdin closes."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    _warm_up()
    _cap_address_space(memory_bytes)
    stdout.write(_READY)
    stdout.flush()
    while True:
        try:
            job: DecodeJob = pickle.loads(_read_frame(stdin))
        except EOFError:
            return
        _write_frame(stdout, pickle.dumps(_outcome(job, memory_bytes), protocol=pickle.HIGHEST_PROTOCOL))


def _warm_up() -> None:
    """Load every image plugin and decode one small image before the memory cap and the ready line. A fresh
    worker's first decode took 21 to 35 ms against 1 ms for the next, its lazy imports charged to an
    upload's time limit and mapped under its memory cap."""
    Image.init()
    blank = io.BytesIO()
    Image.new("RGB", (8, 8)).save(blank, format="PNG")
    limits = ImageLimits(max_bytes=len(blank.getvalue()), max_pixels=64)
    DecodeJob(blank.getvalue(), 4, 4, 3, "letterbox", limits, preview_side=4).run()


def _outcome(job: DecodeJob, memory_bytes: int) -> tuple[str, Any]:
    try:
        prepared = job.run()
    except ServiceError as exc:
        return "error", (type(exc), exc.message, exc.detail)
    except MemoryError:
        message = f"decoding the image needs more than {memory_bytes // 2**20} MiB"
        return "error", (ImageTooLargeError, message, {"decode_memory_bytes": memory_bytes})
    return "ok", prepared


def _cap_address_space(memory_bytes: int) -> None:
    """Allow this process `memory_bytes` of address space beyond what it maps now, with its modules loaded."""
    with open("/proc/self/statm") as statm:
        mapped = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    limit = mapped + memory_bytes
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
