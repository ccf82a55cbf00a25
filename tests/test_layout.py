"""The tree reads like the design: thin routes over the engine, and training scored by the serving code."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO_ROOT
from probes import modules_imported_by

MAX_ROUTE_LINES = 25


def modules(package: str) -> Iterator[tuple[Path, ast.Module]]:
    for path in sorted((REPO_ROOT / package).rglob("*.py")):
        yield path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def is_route(function: ast.AST) -> bool:
    """Decorated as `@router.get(...)`, `@protected.post(...)` and the like."""
    if not isinstance(function, ast.AsyncFunctionDef | ast.FunctionDef):
        return False
    return any(
        isinstance(decorator, ast.Call)
        and isinstance(decorator.func, ast.Attribute)
        and decorator.func.attr in {"get", "post", "put", "delete", "api_route"}
        for decorator in function.decorator_list
    )


def routes() -> list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    found = []
    for path, module in modules("service/http/routes"):
        found += [(f"{path.name}:{node.name}", node) for node in module.body if is_route(node)]
    return found


def test_there_are_routes_to_check() -> None:
    names = {name for name, _ in routes()}
    assert {"tasks.py:classify", "tasks.py:detect", "tasks.py:segment", "v2.py:infer"} <= names


@pytest.mark.parametrize(("name", "route"), routes(), ids=[name for name, _ in routes()])
def test_every_route_is_a_few_lines(name: str, route: ast.AsyncFunctionDef) -> None:
    first = min([route.lineno, *(decorator.lineno for decorator in route.decorator_list)])
    length = route.end_lineno - first + 1  # type: ignore[operator]
    assert length <= MAX_ROUTE_LINES, f"{name} is {length} lines, decorator included"


def imported_modules(module: ast.Module) -> Iterator[str]:
    for node in ast.walk(module):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


def test_training_never_imports_the_http_adapters() -> None:
    offending = {
        f"{path.relative_to(REPO_ROOT)}: {name}"
        for path, module in modules("training")
        for name in imported_modules(module)
        if name == "service.http" or name.startswith("service.http.") or name == "service.app"
    }
    assert offending == set()


@pytest.mark.parametrize("module", ["service.api.schemas", "service.api.options"])
def test_the_wire_types_load_pydantic_and_nothing_of_the_server(module: str) -> None:
    loaded = modules_imported_by(f"import {module}")
    top = {name.split(".")[0] for name in loaded}
    assert "pydantic" in top
    assert top.isdisjoint({"numpy", "onnxruntime", "PIL", "fastapi", "starlette", "uvicorn", "httpx"})
    ours = {name for name in loaded if name.startswith("service.")}
    assert ours <= {"service.api", "service.api.terms", "service.api.options", module}


def test_the_wire_types_import_each_other_relatively_so_the_client_wheel_can_carry_them() -> None:
    """client/pyproject.toml ships service/api as vision_client.api, where `from service...` would break."""
    absolute = {
        f"{path.name}: {node.module}"
        for path, module in modules("service/api")
        for node in module.body
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("service")
    }
    assert absolute == set()


def test_the_client_imports_nothing_of_the_server() -> None:
    offending = {
        f"{path.relative_to(REPO_ROOT)}: {name}"
        for path, module in modules("client/vision_client")
        for name in imported_modules(module)
        if name.split(".")[0] in {"service", "training"}
    }
    assert offending == set()


def test_training_has_no_decoder_or_nms_of_its_own() -> None:
    own = {
        f"{path.relative_to(REPO_ROOT)}: {node.name}"
        for path, module in modules("training")
        for node in ast.walk(module)
        if isinstance(node, ast.FunctionDef) and ("suppress" in node.name or "nms" in node.name.lower())
    }
    assert own == set()
    from service.core.tasks import detect
    from training.evaluate import evaluate

    assert evaluate.detect is detect.detect


@pytest.mark.parametrize(
    ("adapter", "forbidden"),
    [
        ("service/grpc", {"service.http", "fastapi", "starlette", "uvicorn"}),
        ("service/http", {"service.grpc"}),
    ],
)
def test_the_adapters_do_not_import_each_other(adapter: str, forbidden: set[str]) -> None:
    """Each adapter parses, calls the engine and builds its answer; what they share is below them."""
    offending = {
        f"{path.relative_to(REPO_ROOT)}: {name}"
        for path, module in modules(adapter)
        for name in imported_modules(module)
        if any(name == other or name.startswith(f"{other}.") for other in forbidden)
    }
    assert offending == set()
