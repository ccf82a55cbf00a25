"""INT8 against FP32 matrix multiply in ONNX Runtime on this CPU: the most quantisation can win here.

A quantised conv is an integer GEMM plus quantise, dequantise and requantise work; where the integer GEMM
is barely faster than the float one (x86 without VNNI), the quantised model cannot be faster.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper

# A 1024-cube GEMM, and the classifier's first-level 3x3 conv as a GEMM: 64x64 pixels, 3*3*16 in, 16 out.
SHAPES: tuple[tuple[int, int, int], ...] = ((1024, 1024, 1024), (4096, 144, 16))
VECTOR_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")


def matmul_model(m: int, k: int, n: int, int8: bool) -> bytes:
    """One [m, k] x [k, n] product as an ONNX model: u8 x s8 -> s32 `MatMulInteger`, or FP32 `MatMul`."""
    if int8:
        types, op = (TensorProto.UINT8, TensorProto.INT8, TensorProto.INT32), "MatMulInteger"
    else:
        types, op = (TensorProto.FLOAT,) * 3, "MatMul"
    inputs = [
        helper.make_tensor_value_info("a", types[0], [m, k]),
        helper.make_tensor_value_info("b", types[1], [k, n]),
    ]
    output = helper.make_tensor_value_info("y", types[2], [m, n])
    graph = helper.make_graph([helper.make_node(op, ["a", "b"], ["y"])], "gemm", inputs, [output])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()


def random_feeds(m: int, k: int, n: int, int8: bool) -> dict[str, np.ndarray]:
    """Inputs for `matmul_model`, covering each type's whole range."""
    rng = np.random.default_rng(0)
    if int8:
        return {
            "a": rng.integers(0, 256, (m, k), dtype=np.uint8),
            "b": rng.integers(-127, 128, (k, n), dtype=np.int8),
        }
    return {"a": rng.random((m, k), dtype=np.float32), "b": rng.random((k, n), dtype=np.float32)}


def _gmacs(m: int, k: int, n: int, int8: bool, seconds: float) -> float:
    """Multiply-accumulates per second (1e9), one intra-op thread, best of repeated timed runs."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(matmul_model(m, k, n, int8), options, providers=["CPUExecutionProvider"])
    feeds = random_feeds(m, k, n, int8)
    session.run(None, feeds)
    best = float("inf")
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        session.run(None, feeds)
        best = min(best, time.perf_counter() - started)
    return m * k * n / best / 1e9


def gemm_speeds(
    shapes: Sequence[tuple[int, int, int]] = SHAPES, seconds: float = 0.5
) -> list[dict[str, Any]]:
    """FP32 and INT8 GMAC/s per shape, alternated twice so both see the same minutes of the machine."""
    rows = []
    for m, k, n in shapes:
        fp32 = int8 = 0.0
        for _ in range(2):
            fp32 = max(fp32, _gmacs(m, k, n, False, seconds))
            int8 = max(int8, _gmacs(m, k, n, True, seconds))
        rows.append({"shape": [m, k, n], "fp32_gmacs": round(fp32, 2), "int8_gmacs": round(int8, 2)})
    return rows


def cpu_vector_flags(cpuinfo: str) -> list[str]:
    """The vector extensions among VECTOR_FLAGS that /proc/cpuinfo's first `flags` line lists."""
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            present = set(line.split(":", 1)[1].split())
            return [flag for flag in VECTOR_FLAGS if flag in present]
    return []
