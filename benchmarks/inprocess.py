"""The in-process limit: decode + resize + `session.run` through the engine's own model, no HTTP at all.

Each stream is a thread that takes `batch` JPEGs, prepares them with `service.core.model.Model.prepare` and
runs them with `Model.run` on one shared session, as the engine does. A segmenter's images are then finished
as the engine finishes them, the mask at the image's size and its PNG: #25's /segment bar counts that work in
the limit. Streams run concurrently (Pillow and ONNX Runtime release the GIL), so this also finds whether
concurrent runs beat one run using every core.
"""

from __future__ import annotations

import functools
import itertools
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from service.api.options import ClassifyOptions, DetectOptions, SegmentOptions, TaskOptions
from service.core.contract import ModelMetadata, parse_metadata
from service.core.imaging import ImageLimits, PreparedImage
from service.core.model import Model, open_model
from service.core.runtime import CPU, ExecutionPlan
from service.core.tasks.classify import CLASSIFY
from service.core.tasks.detect import DETECT
from service.core.tasks.segment import SEGMENT
from service.core.tasks.task import TaskSpec

LIMITS = ImageLimits(max_bytes=64 * 1024 * 1024, max_pixels=100_000_000)
# Each task as the engine runs it, with the options a request without any gets.
TASKS: dict[str, tuple[TaskSpec[Any, Any], TaskOptions]] = {
    "classify": (CLASSIFY, ClassifyOptions()),
    "detect": (DETECT, DetectOptions()),
    "segment": (SEGMENT, SegmentOptions()),
}


@dataclass(frozen=True)
class Config:
    """How the cores are used: concurrent streams, intra-op threads per run and images per run."""

    streams: int
    threads: int
    batch: int

    @property
    def label(self) -> str:
        return f"{self.streams} run(s) x {self.threads} thread(s), batch {self.batch}"


@dataclass(frozen=True)
class Measurement:
    config: Config
    images_per_second: float
    images: int
    seconds: float
    cpu_seconds: float

    @property
    def images_per_cpu_second(self) -> float:
        """Work per unit of CPU actually received: steadier than throughput on a shared machine."""
        return self.images / self.cpu_seconds if self.cpu_seconds > 0 else 0.0

    def row(self) -> dict[str, float | int]:
        return {
            "streams": self.config.streams,
            "threads": self.config.threads,
            "batch": self.config.batch,
            "images_per_second": round(self.images_per_second, 2),
            "images_per_cpu_second": round(self.images_per_cpu_second, 2),
        }


def read_metadata(path: Path) -> ModelMetadata:
    model = onnx.load(str(path), load_external_data=False)
    return parse_metadata({prop.key: prop.value for prop in model.metadata_props})


def load(path: Path, config: Config) -> Model:
    """The model as the engine opens it, with `config`'s threads per run."""
    return open_model(path, ExecutionPlan((CPU,), config.threads, config.streams))


def prepare(model: Model, jpeg: bytes) -> np.ndarray:
    """What the engine does to one upload before batching: decode, orient, convert, resize."""
    return model.prepare(jpeg, LIMITS).pixels


def image_outputs(outputs: dict[str, np.ndarray], row: int) -> dict[str, np.ndarray]:
    """One image's outputs by role, out of its batch's, as the batcher hands them to a finish."""
    return {role: values[row] for role, values in outputs.items()}


def segment_finish(model: Model) -> Callable[[dict[str, np.ndarray], PreparedImage], object] | None:
    """How the engine finishes one image of a segmenter with the default options; None for other tasks."""
    spec, options = TASKS["segment"]
    if model.metadata.task != spec.runs_on:
        return None
    return functools.partial(spec.finish, labels=model.metadata.labels, options=options)


def measure(path: Path, jpegs: Sequence[bytes], config: Config, *, duration: float) -> Measurement:
    """Images per second through `config.streams` threads for `duration` seconds (after one warm-up run)."""
    model = load(path, config)
    finish = segment_finish(model)
    order = itertools.count()

    def one_batch() -> int:
        start = next(order) * config.batch
        picked = [model.prepare(jpegs[(start + i) % len(jpegs)], LIMITS) for i in range(config.batch)]
        outputs = model.run(np.stack([image.pixels for image in picked]))
        if finish is not None:
            for row, image in enumerate(picked):
                finish(image_outputs(outputs, row), image)
        return config.batch

    return _timed_streams(config, one_batch, duration)


def measure_run_only(path: Path, jpegs: Sequence[bytes], config: Config, *, duration: float) -> Measurement:
    """Images per second of `session.run` alone on batches decoded beforehand: what quantisation changes."""
    model = load(path, config)
    batch = np.stack([prepare(model, jpegs[i % len(jpegs)]) for i in range(config.batch)])

    def one_batch() -> int:
        model.run(batch)
        return config.batch

    return _timed_streams(config, one_batch, duration)


def measure_prepare_only(
    path: Path, jpegs: Sequence[bytes], config: Config, *, duration: float
) -> Measurement:
    """Images per second of decode and resize alone, no `session.run`: what the null model is held against."""
    model = load(path, config)
    order = itertools.count()

    def one_batch() -> int:
        start = next(order) * config.batch
        for i in range(config.batch):
            prepare(model, jpegs[(start + i) % len(jpegs)])
        return config.batch

    return _timed_streams(config, one_batch, duration)


def _timed_streams(config: Config, one_batch: Callable[[], int], duration: float) -> Measurement:
    """Run `one_batch` in `config.streams` threads for `duration` seconds, after one warm-up call."""
    counted = [0] * config.streams

    def stream(index: int, deadline: float) -> None:
        while time.perf_counter() < deadline:
            counted[index] += one_batch()

    one_batch()
    cpu_before = time.process_time()
    started = time.perf_counter()
    threads = [threading.Thread(target=stream, args=(i, started + duration)) for i in range(config.streams)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu_before
    return Measurement(config, sum(counted) / seconds, sum(counted), seconds, cpu)


def default_configs(cores: int, batches: Sequence[int] = (1, 4, 8, 16)) -> list[Config]:
    """One run using every core, one single-threaded run per core, and twice that many, at each batch size."""
    shapes = [(1, cores), (cores, 1), (2 * cores, 1)] if cores > 1 else [(1, 1), (2, 1)]
    return [Config(streams, threads, batch) for streams, threads in shapes for batch in batches]


def sweep(
    path: Path, jpegs: Sequence[bytes], configs: Sequence[Config], *, duration: float
) -> list[Measurement]:
    return [measure(path, jpegs, config, duration=duration) for config in configs]


def decode_seconds(path: Path, jpeg: bytes, repeats: int) -> float:
    """Median time to prepare one upload for this model (decode + resize), single-threaded."""
    model = load(path, Config(1, 1, 1))
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        prepare(model, jpeg)
        times.append(time.perf_counter() - started)
    return float(np.median(times))
