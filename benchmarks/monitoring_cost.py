"""What drift monitoring adds to one answered image: the engine's `watch` timed on its own, image by image,
right after the task's finish it follows in the run thread, on a bundled model's real outputs for the photos.

Timing the two steps apart in one loop keeps a slow moment of the machine from landing on one side only: the
difference of two timed loops was within its own noise for a segmenter, whose finish is 30 times the watch.
It runs as its own process (`python -m benchmarks.monitoring_cost TASK=MODEL.onnx ...`, one JSON line out) so
that its Prometheus metrics live in files, as they do under the service's default workers.
"""

from __future__ import annotations

import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import images, inprocess
from service.api.options import TaskOptions
from service.core.engine import watch
from service.core.imaging import PreparedImage
from service.core.model import Model, open_model
from service.core.monitor import DriftMonitor, MonitorConfig
from service.core.runtime import CPU, ExecutionPlan
from service.core.tasks.task import TaskSpec

Answered = Sequence[tuple[dict[str, np.ndarray], PreparedImage]]

# Blocks per task, each answering the photos as many times as fill about BLOCK_SECONDS; the medians are taken
# over blocks.
BLOCKS = 11
BLOCK_SECONDS = 0.1


def measure(models: Mapping[str, Path]) -> dict[str, dict[str, float]]:
    """Each task's microseconds per image for its finish and for the watch that follows it."""
    with tempfile.TemporaryDirectory(prefix="vision-metrics-") as metrics_dir:
        command = [sys.executable, "-m", "benchmarks.monitoring_cost"]
        command += [f"{task}={path}" for task, path in models.items()]
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": metrics_dir}
        done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    return json.loads(done.stdout.splitlines()[-1])


def medians(measured: Sequence[Mapping[str, Mapping[str, float]]]) -> dict[str, dict[str, float]]:
    """Several `measure` answers as one: per task, the median of each time, and how many there were."""
    return {
        task: {
            "finish_us": round(statistics.median(one[task]["finish_us"] for one in measured), 2),
            "watch_us": round(statistics.median(one[task]["watch_us"] for one in measured), 2),
            "blocks": measured[0][task]["blocks"],
            "runs": len(measured),
        }
        for task in measured[0]
    }


def _time_tasks(models: Mapping[str, Path]) -> dict[str, dict[str, float]]:
    jpegs, _ = images.upload_set()
    timed = {}
    for task, path in models.items():
        model = open_model(path, ExecutionPlan((CPU,), 1, 1))
        if model.metadata.reference is None:
            raise ValueError(f"{path} carries no drift reference: nothing to monitor")
        spec, options = inprocess.TASKS[task]
        prepared = [model.prepare(jpeg, inprocess.LIMITS, spec.preview_side(options)) for jpeg in jpegs]
        answered = [(_outputs_of(model, image.pixels), image) for image in prepared]
        monitor = DriftMonitor(model.metadata, MonitorConfig())
        one_pass = functools.partial(_one_pass, spec, options, model.metadata.labels, monitor, answered)
        # A full window first, so each image also slides the oldest one out, as in steady service.
        fill = [one_pass() for _ in range(MonitorConfig().window // len(answered) + 1)]
        passes = max(1, round(BLOCK_SECONDS * 1e9 / sum(map(sum, fill)) * len(fill)))
        blocks = [[one_pass() for _ in range(passes)] for _ in range(BLOCKS)]
        per_block = passes * len(answered)
        timed[task] = {
            "finish_us": round(statistics.median(sum(f for f, _ in b) / per_block / 1000 for b in blocks), 2),
            "watch_us": round(statistics.median(sum(w for _, w in b) / per_block / 1000 for b in blocks), 2),
            "blocks": BLOCKS,
            "images_per_block": per_block,
        }
        monitor.close()
    return timed


def _one_pass(
    spec: TaskSpec[Any, Any],
    options: TaskOptions,
    labels: Sequence[str],
    monitor: DriftMonitor,
    answered: Answered,
) -> tuple[int, int]:
    """Nanoseconds in the finishes and in the watches of one pass over the answered photos."""
    clock = time.perf_counter_ns
    finishing = watching = 0
    for outputs, image in answered:
        started = clock()
        finished = spec.finish(outputs, image, labels, options)
        finished_at = clock()
        watch(spec, outputs, image, finished, labels, options, monitor)
        finishing += finished_at - started
        watching += clock() - finished_at
    return finishing, watching


def _outputs_of(model: Model, pixels: np.ndarray) -> dict[str, np.ndarray]:
    """One image's outputs by role, as the batcher hands them to a finish."""
    return inprocess.image_outputs(model.run(pixels[None]), 0)


def main(argv: Sequence[str]) -> None:
    models = {task: Path(path) for task, path in (argument.split("=", 1) for argument in argv)}
    print(json.dumps(_time_tasks(models)))


if __name__ == "__main__":
    main(sys.argv[1:])
