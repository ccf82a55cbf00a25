"""Shared fixtures: hand-built test models, a real uvicorn server on loopback, Pillow-encoded images."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import onnx_models
import pytest
from PIL import Image
from ports import free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
TEST_DEFAULTS = {"classify": "colours", "detect": "boxes", "segment": "threshold"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Training runs (marked slow) have no per-test limit: their time grows with whatever else shares the
    cores, and the backbones' shared setup passed 600 s inside a busy suite. Every other test keeps the
    600 s of pyproject.toml, far above its time beside a second `make test`."""
    for item in items:
        if item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.timeout(0))
    _longest_files_first(items)


# The files that take longest on one worker (a quiet clean clone, 7 Dec 2026: 377, 274 and 82 s of the
# 1,558 s all files take).
LONGEST_FILES = (
    "training/test_backbones.py",
    "training/test_catalogue.py",
    "deploy/test_image_contents.py",
)


def _longest_files_first(items: list[pytest.Item]) -> None:
    """`make test` hands whole files to its workers in this order (pytest-xdist's loadfile, told not to
    reorder by test count): the longest first, then the other training files, so none of them starts last
    and leaves the other worker idle."""
    training = {item.path for item in items if item.get_closest_marker("slow")}

    def rank(item: pytest.Item) -> tuple[int, bool]:
        relative = item.path.relative_to(Path(__file__).parent).as_posix()
        longest = LONGEST_FILES.index(relative) if relative in LONGEST_FILES else len(LONGEST_FILES)
        return longest, item.path not in training

    items.sort(key=rank)


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the browser tests' screenshots go: $VISION_SCREENSHOTS_DIR, or a temporary folder."""
    from browsers import screenshot_folder

    return screenshot_folder(tmp_path_factory)


@pytest.fixture(scope="module")
def started_chromium() -> Iterator[Any]:
    """Debian's headless Chromium, started once per module (imported here only by the browser tests)."""
    from browsers import chromium

    with chromium() as started:
        yield started


@pytest.fixture(scope="module")
def browser(started_chromium: Any, bundled_server: LiveServer) -> Any:
    """A Chromium page on the bundled server that may ask nothing of any other."""
    from browsers import open_page

    return open_page(started_chromium, bundled_server)


@pytest.fixture(scope="session")
def explaining_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Classifiers with exact heat maps (stretched, letterboxed), and the colour classifier without one."""
    root = tmp_path_factory.mktemp("explaining")
    onnx_models.explaining_colour_classifier(root)
    onnx_models.explaining_colour_classifier(root, name="colours-letterboxed", resize="letterbox")
    onnx_models.colour_classifier(root)
    return root


@pytest.fixture(scope="session")
def test_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model repository of exact-answer models, plus two broken ones that must be refused."""
    root = tmp_path_factory.mktemp("models")
    onnx_models.colour_classifier(root, version=1)
    onnx_models.colour_classifier(root, version=2)
    onnx_models.brightness_classifier(root)
    onnx_models.fixed_detector(root, name="boxes", resize="letterbox")
    onnx_models.fixed_detector(root, name="boxes-stretch", resize="stretch")
    onnx_models.threshold_segmenter(root)
    onnx_models.misnamed_model(root)
    onnx_models.misshapen_model(root)
    return root


class LiveServer:
    """`python -m service` in its own process on a loopback port, configured by VISION_* variables."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # host:port of its gRPC server, where the test asked for one (grpc_port=...).
        grpc_port = env.get("VISION_GRPC_PORT", "0")
        self.grpc = None if grpc_port == "0" else f"127.0.0.1:{grpc_port}"
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "service", "--host", "127.0.0.1", "--port", str(self.port)],
            env={**os.environ, **env},
            cwd=REPO_ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def wait(self, path: str = "/healthz/ready", timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.logs()}")
            try:
                if self.client.get(path).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"{path} not 200 after {timeout}s:\n{self.logs()}")

    def logs(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        self.client.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


ServerFactory = Callable[..., LiveServer]


class ServerPool:
    """Live servers by who needs them: the session's shared ones live until the end, the others until the
    end of the test module that started them, so a run holds a few servers at a time rather than every one
    it ever started (each with its decode workers)."""

    def __init__(self) -> None:
        self.shared: list[LiveServer] = []
        self.module: list[LiveServer] = []

    def stop_module_servers(self) -> None:
        while self.module:
            self.module.pop().stop()

    def stop_all(self) -> None:
        self.stop_module_servers()
        while self.shared:
            self.shared.pop().stop()


@pytest.fixture(scope="session")
def server_pool() -> Iterator[ServerPool]:
    pool = ServerPool()
    yield pool
    pool.stop_all()


@pytest.fixture(scope="module", autouse=True)
def _stop_module_servers(server_pool: ServerPool) -> Iterator[None]:
    yield
    server_pool.stop_module_servers()


@pytest.fixture(scope="session")
def start_server(
    tmp_path_factory: pytest.TempPathFactory, server_pool: ServerPool
) -> Iterator[ServerFactory]:
    """Start a live server with extra VISION_* settings (keyword arguments without the prefix); `shared`
    keeps it for the whole session, else it stops at the end of the current test module."""

    def start(models_dir: Path, wait: bool = True, shared: bool = False, **settings: object) -> LiveServer:
        env = {
            "VISION_MODELS_DIR": str(models_dir),
            "VISION_DEFAULT_MODELS": json.dumps(TEST_DEFAULTS),
            "VISION_LOG_FORMAT": "json",
            # Stopping a test server needs no drain; the drain's own tests ask for one.
            "VISION_DRAIN_SECONDS": "0",
            # One process, whose budgets, queues and logs the tests count; test_workers.py runs the default.
            "VISION_WORKERS": "1",
            # No gRPC port unless a test asks for one (grpc_port=...): parallel servers would share 8001.
            "VISION_GRPC_PORT": "0",
        }
        env.update({f"VISION_{key.upper()}": str(value) for key, value in settings.items()})
        server = LiveServer(env, tmp_path_factory.mktemp("server") / "server.log")
        (server_pool.shared if shared else server_pool.module).append(server)
        if wait:
            server.wait()
        return server

    return start


@pytest.fixture(scope="session")
def server(start_server: ServerFactory, test_models_dir: Path) -> LiveServer:
    """The shared live server over the test models, with small limits so limit tests stay cheap."""
    return start_server(
        test_models_dir, shared=True, max_upload_bytes=2_000_000, max_pixels=5_000_000, max_images=4
    )


@pytest.fixture(scope="session")
def bundled_server(start_server: ServerFactory) -> LiveServer:
    """A live server over the bundled models, with the service's own default models, and its gRPC port."""
    from service.settings import DEFAULT_MODELS

    return start_server(
        REPO_ROOT / "models", shared=True, default_models=json.dumps(DEFAULT_MODELS), grpc_port=free_port()
    )


@pytest.fixture
def client(server: LiveServer) -> httpx.Client:
    assert server.alive(), server.logs()
    return server.client


def encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    """The bytes of `image` saved by Pillow in `fmt`."""
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def solid(
    colour: tuple[int, int, int] | int, size: tuple[int, int] = (64, 32), mode: str = "RGB"
) -> Image.Image:
    return Image.new(mode, size, colour)


SCHEMATHESIS_KEYS = {"api": "schemathesis-api-key", "admin": "schemathesis-admin-key"}


@pytest.fixture(scope="session")
def guarded_server(start_server: ServerFactory, test_models_dir: Path) -> LiveServer:
    """A live server over the test models with the default limits, an API key and an admin key."""
    return start_server(
        test_models_dir, shared=True, api_keys=SCHEMATHESIS_KEYS["api"], admin_key=SCHEMATHESIS_KEYS["admin"]
    )


BUNDLED_KEYS = {"api": "client-team-key", "admin": "operator-admin-key"}


@pytest.fixture(scope="session")
def bundled_guarded_server(start_server: ServerFactory) -> LiveServer:
    """The bundled models behind an API key and an admin key, as a client team meets them in production."""
    from service.settings import DEFAULT_MODELS

    return start_server(
        REPO_ROOT / "models",
        shared=True,
        default_models=json.dumps(DEFAULT_MODELS),
        api_keys=BUNDLED_KEYS["api"],
        admin_key=BUNDLED_KEYS["admin"],
    )


@pytest.fixture(scope="session")
def live_schema(guarded_server: LiveServer):  # type: ignore[no-untyped-def]
    """That server's own OpenAPI document, loaded by schemathesis."""
    import schemathesis

    return schemathesis.openapi.from_url(f"{guarded_server.url}/openapi.json")
