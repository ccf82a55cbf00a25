"""Provider choice and thread planning: CUDA when asked and present, a clean CPU fallback everywhere else."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort
import pytest
from conftest import ServerFactory

from service.core.runtime import (
    CPU,
    CUDA,
    ExecutionPlan,
    ProviderUnavailableError,
    batch_delay_seconds,
    open_session,
    plan_execution,
    session_device,
)

HAS_CUDA = CUDA in ort.get_available_providers()


@pytest.mark.parametrize(("cores", "runs", "threads"), [(2, 2, 1), (8, 8, 1), (1, 1, 1)])
def test_cpu_plan_never_oversubscribes(cores: int, runs: int, threads: int) -> None:
    plan = plan_execution("cpu", cores=cores, threads=0, workers=0)
    assert plan.providers == (CPU,)
    assert (plan.concurrent_runs, plan.intra_op_threads) == (runs, threads)
    assert plan.concurrent_runs * plan.intra_op_threads <= cores


def test_explicit_threads_and_workers_win() -> None:
    plan = plan_execution("cpu", cores=16, threads=4, workers=2)
    assert (plan.concurrent_runs, plan.intra_op_threads) == (2, 4)


def test_workers_share_the_cores() -> None:
    plan = plan_execution("cpu", cores=8, threads=0, workers=2)
    assert plan.intra_op_threads == 4


def test_batch_delay_is_auto_per_device_unless_set() -> None:
    cpu, cuda = ExecutionPlan((CPU,), 1, 2), ExecutionPlan((CUDA, CPU), 1, 1)
    assert batch_delay_seconds(cpu, None) == 0.0
    assert batch_delay_seconds(cuda, None) == pytest.approx(0.002)
    assert batch_delay_seconds(cpu, 5.0) == pytest.approx(0.005)
    assert batch_delay_seconds(cuda, 0.0) == 0.0


@pytest.mark.skipif(HAS_CUDA, reason="this onnxruntime build has CUDA")
def test_auto_falls_back_to_cpu(test_models_dir: Path) -> None:
    plan = plan_execution("auto", cores=2, threads=0, workers=0)
    assert plan.device == "cpu"
    session = open_session(test_models_dir / "colours" / "1" / "model.onnx", plan)
    assert session_device(session) == "cpu"


@pytest.mark.skipif(HAS_CUDA, reason="this onnxruntime build has CUDA")
def test_cuda_demanded_without_a_gpu_fails_at_start(
    start_server: ServerFactory, test_models_dir: Path
) -> None:
    with pytest.raises(ProviderUnavailableError):
        plan_execution("cuda", cores=2, threads=0, workers=0)
    server = start_server(test_models_dir, wait=False, provider="cuda")
    assert server.process.wait(timeout=60) != 0
    assert "CUDAExecutionProvider" in server.logs()


@pytest.mark.skipif(not HAS_CUDA, reason="needs onnxruntime-gpu")
def test_cuda_plan_runs_one_stream(test_models_dir: Path) -> None:
    plan = plan_execution("cuda", cores=16, threads=0, workers=0)
    assert plan.providers == (CUDA, CPU)
    assert plan.concurrent_runs == 1
    session = open_session(test_models_dir / "colours" / "1" / "model.onnx", plan)
    # With a GPU present the session runs there; on a CUDA build without a GPU it falls back to CPU.
    assert session_device(session) in {"cuda", "cpu"}
