"""The examples docs/openapi.json shows, and the check that a live answer has an example's shape."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from conftest import REPO_ROOT

DOCUMENT: dict[str, Any] = json.loads((REPO_ROOT / "docs" / "openapi.json").read_text(encoding="utf-8"))
_NUMBER = re.compile(r"\d+(\.\d+)?")
# Encoded images: a pixel on a class border may differ between CPUs, so only their presence is compared.
OPAQUE = {"png_base64"}


def body_example(schema: str) -> Any:
    """The whole-body example of a component schema."""
    return DOCUMENT["components"]["schemas"][schema]["examples"][0]


def error_example(code: str, path: str, status: int) -> Any:
    """The example the document gives for `code` among the answers of `path` (any method) with `status`."""
    for operation in DOCUMENT["paths"][path].values():
        examples = operation["responses"].get(str(status), {}).get("content", {}).get("application/json", {})
        if code in examples.get("examples", {}):
            return examples["examples"][code]["value"]
    raise AssertionError(f"{path} documents no {status} example for {code}")


def assert_like(example: Any, answer: Any, where: str = "") -> None:
    """Same keys, list lengths and types; strings equal once their numbers are masked (sizes, counts and
    durations depend on the settings and the request)."""
    if isinstance(example, dict):
        assert isinstance(answer, dict), f"{where}: {answer!r}"
        assert set(answer) == set(example), f"{where}: {answer!r} vs {example!r}"
        for key in example.keys() - OPAQUE:
            assert_like(example[key], answer[key], f"{where}.{key}")
    elif isinstance(example, list):
        assert isinstance(answer, list), f"{where}: {answer!r}"
        assert len(answer) == len(example), f"{where}: {answer!r} vs {example!r}"
        for index, (expected, got) in enumerate(zip(example, answer, strict=True)):
            assert_like(expected, got, f"{where}[{index}]")
    elif isinstance(example, str):
        assert isinstance(answer, str), f"{where}: {answer!r}"
        assert _NUMBER.sub("#", answer) == _NUMBER.sub("#", example), f"{where}: {answer!r} vs {example!r}"
    elif isinstance(example, bool) or example is None:
        assert answer == example, f"{where}: {answer!r} vs {example!r}"
    else:
        assert isinstance(answer, int | float), f"{where}: {answer!r}"
        assert not isinstance(answer, bool), f"{where}: {answer!r}"


def assert_same_answer(example: Any, answer: Any, where: str = "") -> None:
    """The example is this very answer: numbers within 0.01 (the example is rounded, and ONNX Runtime's
    kernels differ a little between CPUs)."""
    assert_like(example, answer, where)
    if isinstance(example, dict):
        for key in example.keys() - OPAQUE:
            assert_same_answer(example[key], answer[key], f"{where}.{key}")
    elif isinstance(example, list):
        for index, (expected, got) in enumerate(zip(example, answer, strict=True)):
            assert_same_answer(expected, got, f"{where}[{index}]")
    elif isinstance(example, str | bool) or example is None:
        assert answer == example, f"{where}: {answer!r} vs {example!r}"
    else:
        assert answer == pytest.approx(example, abs=0.01), f"{where}: {answer!r} vs {example!r}"
