"""The INT8/FP32 GEMM ceiling: real ONNX Runtime products, the CPU flags read right, the report's wording."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from benchmarks import kernels
from benchmarks.report import int8_gemm_section


@pytest.mark.parametrize("int8", [False, True])
def test_matmul_model_computes_the_product(int8: bool) -> None:
    session = ort.InferenceSession(kernels.matmul_model(5, 7, 3, int8), providers=["CPUExecutionProvider"])
    feeds = kernels.random_feeds(5, 7, 3, int8)
    (product,) = session.run(None, feeds)
    expected = feeds["a"].astype(np.int64) @ feeds["b"].astype(np.int64) if int8 else feeds["a"] @ feeds["b"]
    assert product.dtype == (np.int32 if int8 else np.float32)
    np.testing.assert_allclose(product, expected, rtol=1e-5)


def test_gemm_speeds_reports_each_shape() -> None:
    rows = kernels.gemm_speeds([(16, 32, 8)], seconds=0.01)
    assert [row["shape"] for row in rows] == [[16, 32, 8]]
    assert rows[0]["fp32_gmacs"] > 0
    assert rows[0]["int8_gmacs"] > 0


def test_vector_flags_come_from_the_flags_line_in_a_fixed_order() -> None:
    cpuinfo = "processor\t: 0\nflags\t\t: fpu sse avx512_vnni fma avx2 avx512f\nbugs\t\t: none\n"
    assert kernels.cpu_vector_flags(cpuinfo) == ["avx2", "fma", "avx512f", "avx512_vnni"]
    assert kernels.cpu_vector_flags("processor\t: 0\n") == []


@pytest.mark.parametrize(
    ("flags", "wording"), [(["avx2", "fma"], "no VNNI"), (["avx2", "avx512_vnni"], "with avx512_vnni")]
)
def test_report_gives_the_ratio_and_whether_the_cpu_has_vnni(flags: list[str], wording: str) -> None:
    results = {
        "machine": {"vector_flags": flags},
        "int8_gemm": [{"shape": [64, 32, 16], "fp32_gmacs": 10.0, "int8_gmacs": 25.0}],
    }
    text = "\n".join(int8_gemm_section(results))
    assert "| 64 x 32 x 16 | 10.0 | 25.0 | 2.50 x |" in text
    assert wording in text
