"""Decoding in worker processes: the same pixels as a decode in this process, and a decode that takes too
long, too much memory, is given up or kills its worker is stopped, answered with a coded error, and its
worker replaced."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import sklearn.datasets
from conftest import encode
from hostile import jpeg_with_repeated_scans
from PIL import Image
from probes import packages_imported_by

from service.core.decoding import PIPE_BYTES, DecodeJob, DecodeLimits, Decoders, Worker
from service.core.errors import CorruptImageError, ImageTooLargeError
from service.core.imaging import ImageLimits
from service.core.inspection import MAX_JPEG_SCANS

LIMITS = ImageLimits(max_bytes=20 * 2**20, max_pixels=40_000_000)
PHOTO = (Path(sklearn.datasets.__file__).parent / "images" / "china.jpg").read_bytes()
# Ninety progressive scans of a 16-megapixel image: allowed by the inspection, about a second of work.
SLOW = jpeg_with_repeated_scans(MAX_JPEG_SCANS - 10, side=4096)


def job(data: bytes, preview_side: int | None = None) -> DecodeJob:
    return DecodeJob(data, 64, 48, 3, "letterbox", LIMITS, preview_side)


@contextmanager
def started(seconds: float) -> Iterator[Worker]:
    worker = Worker(DecodeLimits(memory_bytes=256 * 2**20, seconds=seconds))
    worker.wait_ready()
    try:
        yield worker
    finally:
        worker.close()


@pytest.fixture
def worker() -> Iterator[Worker]:
    """A worker with all the time a loaded machine could need for an honest image."""
    with started(seconds=600) as patient:
        yield patient


def pid_of(worker: Worker) -> int:
    return worker._process.pid


def gone(pid: int) -> bool:
    """Whether process `pid` has ended (it is reaped by its Popen, so it no longer exists)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_worker_gives_the_pixels_and_preview_of_a_decode_in_process() -> None:
    decoders = Decoders(2, DecodeLimits(memory_bytes=256 * 2**20, seconds=10))
    decoders.start()
    try:
        remote = decoders.decode(job(PHOTO, preview_side=100))
    finally:
        decoders.close()
    local = job(PHOTO, preview_side=100).run()
    np.testing.assert_array_equal(remote.pixels, local.pixels)
    assert remote.geometry == local.geometry
    assert remote.preview is not None
    assert local.preview is not None
    assert remote.preview.tobytes() == local.preview.tobytes()


def test_an_upload_and_an_answer_larger_than_the_pipe_arrive_whole(worker: Worker) -> None:
    # Noise does not compress: a PNG over the pipe's size, and its preview's pixels too.
    noise = np.random.default_rng(7).integers(0, 256, (1024, 1024, 3), dtype=np.uint8)
    upload = encode(Image.fromarray(noise), "PNG")
    assert len(upload) > PIPE_BYTES
    remote = worker.decode(job(upload, preview_side=1024), given_up=lambda: False)
    local = job(upload, preview_side=1024).run()
    np.testing.assert_array_equal(remote.pixels, local.pixels)
    assert remote.preview is not None
    assert remote.preview.size == (1024, 1024)
    assert remote.preview.tobytes() == noise.tobytes()


def test_a_worker_that_exits_before_it_is_ready_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    def spawn_one_that_exits(self: Worker) -> subprocess.Popen[bytes]:
        command = [sys.executable, "-c", "import sys; sys.exit(3)"]
        return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)

    monkeypatch.setattr(Worker, "_spawn", spawn_one_that_exits)
    worker = Worker(DecodeLimits(memory_bytes=256 * 2**20, seconds=10))
    try:
        with pytest.raises(RuntimeError, match=r"failed to start \(exit status 3\)"):
            worker.wait_ready()
    finally:
        worker.close()


def test_a_decode_over_its_time_is_killed_and_the_worker_replaced() -> None:
    # Only what this test is about has 0.05 s: a loaded machine may take longer over any image.
    with started(seconds=0.05) as hasty:
        before = pid_of(hasty)
        with pytest.raises(ImageTooLargeError, match=r"took longer than 0\.05 s"):
            hasty.decode(job(SLOW), given_up=lambda: False)
        assert gone(before)
        assert pid_of(hasty) != before
        assert not gone(pid_of(hasty))


def test_a_decode_whose_request_is_given_up_is_stopped_and_its_replacement_decodes(worker: Worker) -> None:
    given_up = threading.Event()
    before = pid_of(worker)
    threading.Timer(0.1, given_up.set).start()
    with pytest.raises(ImageTooLargeError, match="given up"):
        worker.decode(job(SLOW), given_up.is_set)
    assert gone(before)
    assert worker.decode(job(PHOTO), given_up=lambda: False).pixels.shape == (48, 64, 3)


def test_a_decode_over_its_memory_is_refused(worker: Worker) -> None:
    # 25 megapixels of float32 samples: 100 MB decoded, several copies to scale them.
    floats = encode(Image.new("F", (5000, 5000), 0.5), "TIFF", compression="tiff_adobe_deflate")
    with pytest.raises(ImageTooLargeError, match="needs more than 256 MiB"):
        worker.decode(job(floats), given_up=lambda: False)
    assert worker.decode(job(PHOTO), given_up=lambda: False).pixels.shape == (48, 64, 3)


def test_a_worker_that_dies_is_a_decoder_failure_and_is_replaced(worker: Worker) -> None:
    before = pid_of(worker)
    os.kill(before, signal.SIGKILL)
    worker._process.wait()  # gone before the upload is written: the write itself fails
    with pytest.raises(CorruptImageError, match="made the decoder fail"):
        worker.decode(job(PHOTO), given_up=lambda: False)
    assert pid_of(worker) != before
    assert worker.decode(job(PHOTO), given_up=lambda: False).pixels.shape == (48, 64, 3)


def test_refusals_inside_the_worker_keep_their_code(worker: Worker) -> None:
    with pytest.raises(CorruptImageError):
        worker.decode(job(PHOTO[: len(PHOTO) // 3] + b"\0" * 10), given_up=lambda: False)
    with pytest.raises(ImageTooLargeError, match="scans"):
        worker.decode(job(jpeg_with_repeated_scans(MAX_JPEG_SCANS + 1)), given_up=lambda: False)


def test_a_worker_loads_only_what_decoding_needs() -> None:
    # Each worker is a process of its own on every decode thread: pydantic alone would add 16 MiB to each.
    heavy = {"pydantic", "onnxruntime", "fastapi", "starlette", "tensorflow"}
    assert heavy.isdisjoint(packages_imported_by("import service.core.decoding"))


def test_a_ready_worker_has_every_codec_loaded_before_its_first_upload(worker: Worker) -> None:
    # Loaded lazily, the codecs cost an upload's decode time, and mapped under the worker's memory cap.
    maps = Path(f"/proc/{pid_of(worker)}/maps").read_text()
    assert "PIL/_webp" in maps
