"""A client that openapi-python-client generates from docs/openapi.json, with warnings as errors, uploads
images to a live server both ways the spec declares (multipart and a raw body) and parses typed answers."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from conftest import REPO_ROOT, LiveServer, encode, solid

pytest.importorskip("openapi_python_client")

PACKAGE = "vision_service_client"


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("generated") / "client"
    tools = Path(sys.executable).parent  # the generator formats with ruff from the same environment
    finished = subprocess.run(
        [
            str(tools / "openapi-python-client"),
            "generate",
            "--path",
            str(REPO_ROOT / "docs" / "openapi.json"),
            "--output-path",
            str(out),
            "--fail-on-warning",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PATH": f"{tools}{os.pathsep}{os.environ.get('PATH', '')}"},
    )
    assert finished.returncode == 0, finished.stdout + finished.stderr
    return out


def generated_module(root: Path, name: str) -> ModuleType:
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return importlib.import_module(f"{PACKAGE}.{name}")


def test_generation_passes_with_warnings_as_errors(generated: Path) -> None:
    assert (generated / PACKAGE / "api" / "inference" / "classify_classify_post.py").is_file()


def test_the_generated_client_classifies_a_raw_body_and_a_multipart_batch(
    generated: Path, server: LiveServer
) -> None:
    client_module = generated_module(generated, "client")
    types = generated_module(generated, "types")
    classify = generated_module(generated, "api.inference.classify_classify_post")
    bodies = generated_module(generated, "models.classify_classify_post_files_body")
    answers = generated_module(generated, "models.classify_response")
    red, blue = encode(solid((230, 10, 10)), "PNG"), encode(solid((10, 10, 230)), "PNG")
    client = client_module.Client(base_url=server.url)

    raw = classify.sync(client=client, body=types.File(payload=red, file_name="red.png"), top_k=1)
    assert isinstance(raw, answers.ClassifyResponse)
    assert [r.predictions[0].label for r in raw.results] == ["red"]

    files = [types.File(payload=red, file_name="a.png"), types.File(payload=blue, file_name="b.png")]
    batch = classify.sync(client=client, body=bodies.ClassifyClassifyPostFilesBody(image=files), top_k=1)
    assert isinstance(batch, answers.ClassifyResponse)
    assert [r.predictions[0].label for r in batch.results] == ["red", "blue"]
