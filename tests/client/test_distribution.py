"""The client as client teams install it: its own wheel, built from client/, in a fresh venv that holds
none of the server's packages, calling a live server with the `vision` command and the Python API."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import REPO_ROOT, LiveServer

EXAMPLES = REPO_ROOT / "docs" / "examples"
# The client's dependencies as wheels, fetched by `make test` while it sets up (the Makefile's CLIENT_WHEELS).
DEPENDENCY_WHEELS = REPO_ROOT / ".venv" / "client-wheels"
SERVER_PACKAGES = {
    "onnxruntime",
    "numpy",
    "fastapi",
    "starlette",
    "uvicorn",
    "python-multipart",
    "tensorflow",
}


@dataclass(frozen=True)
class FreshVenv:
    bin: Path
    wheel: Path

    def run(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / arguments[0]), *arguments[1:]],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=REPO_ROOT,
        )

    def installed(self) -> dict[str, str]:
        listed = self.run("python", "-m", "pip", "list", "--format", "json")
        assert listed.returncode == 0, listed.stderr
        return {entry["name"].lower(): entry["version"] for entry in json.loads(listed.stdout)}


def _run(*command: str | Path) -> None:
    finished = subprocess.run([str(part) for part in command], capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stdout + finished.stderr


@pytest.fixture(scope="module")
def fresh_venv(tmp_path_factory: pytest.TempPathFactory) -> FreshVenv:
    assert DEPENDENCY_WHEELS.is_dir(), f"{DEPENDENCY_WHEELS} is missing: `make test` fetches it"
    root = tmp_path_factory.mktemp("client-distribution")
    _run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "-q",
        "--no-deps",
        "--no-build-isolation",
        "-w",
        root,
        "./client",
    )
    (wheel,) = root.glob("vision_service_client-*.whl")
    _run(sys.executable, "-m", "venv", root / "venv")
    bin_dir = root / "venv" / "bin"
    _run(bin_dir / "pip", "install", "-q", "--no-index", "--find-links", DEPENDENCY_WHEELS, wheel)
    return FreshVenv(bin_dir, wheel)


def test_the_wheel_installs_httpx_and_pydantic_and_none_of_the_server(fresh_venv: FreshVenv) -> None:
    installed = fresh_venv.installed()
    assert {"vision-service-client", "httpx", "pydantic"} <= installed.keys()
    assert installed.keys().isdisjoint(SERVER_PACKAGES | {"vision-service", "pillow"})


def test_the_installed_vision_command_classifies_against_a_live_server(
    fresh_venv: FreshVenv, bundled_server: LiveServer
) -> None:
    answered = fresh_venv.run(
        "vision", "classify", str(EXAMPLES / "star.jpg"), "--json", "--url", bundled_server.url
    )
    assert answered.returncode == 0, answered.stderr
    assert json.loads(answered.stdout)["results"][0]["predictions"][0]["label"] == "star"
    version = tomllib.loads((REPO_ROOT / "client" / "pyproject.toml").read_text())["project"]["version"]
    assert fresh_venv.run("vision", "--version").stdout.strip() == f"vision {version}"


def test_the_installed_python_client_parses_typed_answers(
    fresh_venv: FreshVenv, bundled_server: LiveServer
) -> None:
    snippet = f"""
from vision_client import Client
from vision_client.api.schemas import DetectResponse
with Client({bundled_server.url!r}) as vision:
    found = vision.detect({str(EXAMPLES / "shapes.jpg")!r})
assert isinstance(found, DetectResponse)
print(sorted(d.label for d in found.results[0].detections))
"""
    answered = fresh_venv.run("python", "-c", snippet)
    assert answered.returncode == 0, answered.stderr
    assert "hexagon" in answered.stdout


def test_draw_without_the_full_extra_says_how_to_get_it(
    fresh_venv: FreshVenv, bundled_server: LiveServer, tmp_path: Path
) -> None:
    target = tmp_path / "boxes.png"
    answered = fresh_venv.run(
        "vision", "--url", bundled_server.url, "detect", str(EXAMPLES / "shapes.jpg"), "--draw", str(target)
    )
    assert answered.returncode == 2
    assert "pip install 'vision-service-client[full]'" in answered.stderr
    assert not target.exists()
