"""ONNX Runtime sessions: provider choice with a clean CPU fallback, and thread settings that do not fight."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import onnxruntime as ort

logger = logging.getLogger("vision.runtime")

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
ProviderChoice = Literal["auto", "cpu", "cuda"]


class ProviderUnavailableError(RuntimeError):
    """`cuda` was demanded but this process cannot run on a GPU."""


@dataclass(frozen=True)
class ExecutionPlan:
    """How each model runs: the ORT providers to try, threads per run and concurrent runs per model."""

    providers: tuple[str, ...]
    intra_op_threads: int
    concurrent_runs: int

    @property
    def device(self) -> str:
        return "cuda" if self.providers[0] == CUDA else "cpu"


# Measured on 2 CPU cores: waiting 2 ms to fill a batch cost 25% of single-client throughput and gained
# nothing at 16 clients, where batches form anyway while every worker is busy. Kept for CUDA, not measured
# here, where a larger batch costs the GPU little more than a small one.
AUTO_BATCH_DELAY_MS = {"cpu": 0.0, "cuda": 2.0}


def plan_execution(choice: ProviderChoice, *, cores: int, threads: int, workers: int) -> ExecutionPlan:
    """Pick providers and split the cores between concurrent runs so threads never oversubscribe."""
    cuda_built = CUDA in ort.get_available_providers()
    if choice == "cuda" and not cuda_built:
        raise ProviderUnavailableError(
            "VISION_PROVIDER=cuda but onnxruntime has no CUDAExecutionProvider (install the [gpu] extra)"
        )
    use_cuda = choice == "cuda" or (choice == "auto" and cuda_built)
    providers = (CUDA, CPU) if use_cuda else (CPU,)
    if use_cuda:
        # On a GPU one stream with large batches beats concurrent small runs.
        runs = workers or 1
        return ExecutionPlan(providers, threads or 1, runs)
    # Measured on 2 cores: concurrent single-threaded runs beat one run using both cores.
    runs = workers or cores
    return ExecutionPlan(providers, threads or max(1, cores // runs), runs)


def batch_delay_seconds(plan: ExecutionPlan, max_delay_ms: float | None) -> float:
    """The configured batching delay, else the device's default."""
    return (AUTO_BATCH_DELAY_MS[plan.device] if max_delay_ms is None else max_delay_ms) / 1000


def open_session(model: Path | bytes, plan: ExecutionPlan, *, name: str = "") -> ort.InferenceSession:
    """A session on a model file or its bytes (`name` says which in logs); with CUDA asked for but unusable
    (no driver, no GPU), fall back to CPU and log it."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = plan.intra_op_threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # Spinning threads burn the cores other runs and the decoder need while idle.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    source = model if isinstance(model, bytes) else str(model)
    session = ort.InferenceSession(source, sess_options=options, providers=list(plan.providers))
    if plan.providers[0] == CUDA and session.get_providers()[0] != CUDA:
        label = name or (source if isinstance(source, str) else "a model given as bytes")
        logger.warning("CUDA requested for %s but unavailable at run time; running on CPU", label)
    return session


def session_device(session: ort.InferenceSession) -> str:
    return "cuda" if session.get_providers()[0] == CUDA else "cpu"


def tensor_shapes(args: list[ort.NodeArg]) -> dict[str, list[int | str | None]]:
    return {arg.name: list(arg.shape) for arg in args}


def run_batch(
    session: ort.InferenceSession, input_name: str, outputs: Mapping[str, str], batch: np.ndarray
) -> dict[str, np.ndarray]:
    """One `session.run` over a stacked batch; results keyed by contract role."""
    roles = list(outputs)
    values = session.run([outputs[role] for role in roles], {input_name: batch})
    return dict(zip(roles, values, strict=True))
