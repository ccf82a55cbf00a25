"""A client that openapi-python-client generates from docs/openapi.json, with warnings as errors, calls every
operation of the spec against a live server over the bundled models and parses every answer into its model."""

from __future__ import annotations

import importlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from conftest import BUNDLED_KEYS, REPO_ROOT, LiveServer
from PIL import Image

from service.http.examples import V2_INFER_REQUEST

pytest.importorskip("openapi_python_client")

PACKAGE = "vision_service_generated_client"
EXAMPLES = REPO_ROOT / "docs" / "examples"


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
            "--config",
            str(REPO_ROOT / "docs" / "openapi-python-client.yaml"),
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
    if str(out) not in sys.path:
        sys.path.insert(0, str(out))
    return out


class Generated:
    """The generated package's modules by their short names, and clients for the API and admin keys."""

    def __init__(self, url: str) -> None:
        client = self.module("client")
        self.user = client.AuthenticatedClient(base_url=url, token=BUNDLED_KEYS["api"])
        self.admin = client.AuthenticatedClient(base_url=url, token=BUNDLED_KEYS["admin"])
        self.anonymous = client.Client(base_url=url)

    @staticmethod
    def module(name: str) -> ModuleType:
        return importlib.import_module(f"{PACKAGE}.{name}")

    def call(self, operation: str, client: Any, **arguments: Any) -> Any:
        """Run one operation (`api.<tag>.<module>`) and return its parsed answer, asserting the status."""
        module = self.module(f"api.{operation}")
        response = module.sync_detailed(client=client, **arguments)
        assert response.status_code == 200, response.content
        return response.parsed

    def model(self, name: str) -> type:
        module_name = "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")
        return getattr(self.module(f"models.{module_name}"), name)

    def file(self, name: str) -> Any:
        return self.module("types").File(payload=(EXAMPLES / name).read_bytes(), file_name=name)


@pytest.fixture(scope="module")
def api(generated: Path, bundled_guarded_server: LiveServer) -> Generated:
    return Generated(bundled_guarded_server.url)


def test_generation_passes_with_warnings_as_errors(generated: Path) -> None:
    assert (generated / PACKAGE / "api" / "inference" / "classify_classify_post.py").is_file()


def test_classify_a_raw_body_and_a_multipart_batch(api: Generated) -> None:
    raw = api.call("inference.classify_classify_post", api.user, body=api.file("star.jpg"), top_k=1)
    assert isinstance(raw, api.model("ClassifyResponse"))
    assert [r.predictions[0].label for r in raw.results] == ["star"]

    form = api.model("ClassifyClassifyPostFilesBody")(image=[api.file("star.jpg"), api.file("digit.png")])
    batch = api.call("inference.classify_classify_post", api.user, body=form, top_k=2)
    assert [len(r.predictions) for r in batch.results] == [2, 2]
    digit = api.call("inference.classify_classify_post", api.user, body=api.file("digit.png"), model="digits")
    assert digit.results[0].predictions[0].label == "7"


def test_detect(api: Generated) -> None:
    answer = api.call("inference.detect_detect_post", api.user, body=api.file("shapes.jpg"))
    assert isinstance(answer, api.model("DetectResponse"))
    assert sorted(d.label for d in answer.results[0].detections) == ["cross", "hexagon", "star"]


def test_segment_answers_a_png_the_size_of_the_image(api: Generated) -> None:
    answer = api.call("inference.segment_segment_post", api.user, body=api.file("star.jpg"))
    png = Image.open(io.BytesIO(answer.payload.read()))
    assert (png.format, png.size) == ("PNG", Image.open(EXAMPLES / "star.jpg").size)


def test_segment_json_answers_fractions_for_a_batch(api: Generated) -> None:
    form = api.model("SegmentJsonSegmentJsonPostFilesBody")(
        image=[api.file("star.jpg"), api.file("shapes.jpg")]
    )
    answer = api.call("inference.segment_json_segment_json_post", api.user, body=form)
    assert isinstance(answer, api.model("SegmentResponse"))
    assert len(answer.results) == 2
    assert sum(answer.results[0].fractions.additional_properties.values()) == pytest.approx(1)


def test_models_and_one_model(api: Generated) -> None:
    listed = api.call("models.list_models_models_get", api.user)
    assert isinstance(listed, api.model("ModelsResponse"))
    assert "shapes-detector" in [m.name for m in listed.models]
    one = api.call("models.get_model_models_name_get", api.user, name="digits")
    assert (one.name, one.task.value, one.latest) == ("digits", "classify", 1)


def test_health(api: Generated) -> None:
    assert api.call("health.live_healthz_live_get", api.anonymous).status.value == "ok"
    assert api.call("health.ready_healthz_ready_get", api.anonymous).status.value == "ok"


def test_v2_server_and_model_metadata_and_readiness(api: Generated) -> None:
    v2 = "open_inference_protocol"
    assert api.call(f"{v2}.server_metadata_v2_get", api.anonymous).name == "vision-service"
    assert api.call(f"{v2}.server_live_v2_health_live_get", api.anonymous).live is True
    assert api.call(f"{v2}.server_ready_v2_health_ready_get", api.anonymous).ready is True
    metadata = api.call(f"{v2}.model_metadata_v2_models_name_get", api.user, name="digits")
    assert metadata.inputs[0].shape == [-1, 32, 32, 1]
    versioned = api.call(
        f"{v2}.model_version_metadata_v2_models_name_versions_version_get", api.user, name="digits", version=1
    )
    assert versioned.versions == ["1"]
    assert api.call(f"{v2}.model_ready_v2_models_name_ready_get", api.user, name="digits").ready is True
    ready = api.call(
        f"{v2}.model_version_ready_v2_models_name_versions_version_ready_get",
        api.user,
        name="digits",
        version=1,
    )
    assert ready.ready is True


def test_v2_infer_with_the_spec_example(api: Generated) -> None:
    request = api.model("InferRequest").from_dict(V2_INFER_REQUEST)
    v2 = "open_inference_protocol"
    for operation, arguments in [
        ("infer_v2_models_name_infer_post", {}),
        ("infer_version_v2_models_name_versions_version_infer_post", {"version": 1}),
    ]:
        answer = api.call(f"{v2}.{operation}", api.user, name="digits", body=request, **arguments)
        assert isinstance(answer, api.model("InferResponse"))
        probabilities = answer.outputs[0].data
        assert probabilities.index(max(probabilities)) == 7


def test_v2_infer_with_binary_tensor_data(api: Generated) -> None:
    """Triton's binary extension as the spec declares it: an octet-stream body, JSON then the tensor's bytes,
    and the JSON's length in the declared Inference-Header-Content-Length header."""
    (tensor,) = V2_INFER_REQUEST["inputs"]
    pixels = np.asarray(tensor["data"], dtype=np.float32)
    header = json.dumps(
        {
            "inputs": [
                {
                    **{k: v for k, v in tensor.items() if k != "data"},
                    "parameters": {"binary_data_size": pixels.nbytes},
                }
            ]
        }
    ).encode()
    answer = api.call(
        "open_inference_protocol.infer_v2_models_name_infer_post",
        api.user,
        name="digits",
        body=api.module("types").File(payload=io.BytesIO(header + pixels.tobytes())),
        inference_header_content_length=len(header),
    )
    probabilities = answer.outputs[0].data
    assert probabilities.index(max(probabilities)) == 7


def test_model_repository_index_unload_and_load(api: Generated) -> None:
    repository = "model_repository"
    index = api.call(f"{repository}.repository_index_v2_repository_index_post", api.admin)
    assert ("digits", "READY") in [(entry.name, entry.state) for entry in index]
    assert (
        api.call(f"{repository}.unload_model_v2_repository_models_name_unload_post", api.admin, name="digits")
        == []
    )
    loaded = api.call(
        f"{repository}.load_model_v2_repository_models_name_load_post", api.admin, name="digits"
    )
    assert [(entry.version, entry.state) for entry in loaded] == [("1", "READY")]


def test_errors_parse_into_the_declared_envelopes(api: Generated) -> None:
    missing = api.module("api.models.get_model_models_name_get").sync_detailed(client=api.user, name="nope")
    assert missing.status_code == 404
    assert missing.parsed.error.code == "model_not_found"
    bad_version = api.module(
        "api.open_inference_protocol.model_version_ready_v2_models_name_versions_version_ready_get"
    )
    answer = bad_version.sync_detailed(client=api.user, name="digits", version=0)
    assert answer.status_code == 400
    assert answer.parsed.error == "path.version: Input should be greater than or equal to 1"
    wrong_key = api.module("client").AuthenticatedClient(base_url=str(api.user._base_url), token="wrong")
    refused = api.module("api.inference.classify_classify_post").sync_detailed(
        client=wrong_key, body=api.file("star.jpg")
    )
    assert (refused.status_code, refused.parsed.error.code) == (403, "forbidden")
