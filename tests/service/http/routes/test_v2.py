"""The Open Inference Protocol REST endpoints over the same models."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest


def test_server_health_and_metadata(client: httpx.Client) -> None:
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/health/ready").status_code == 200
    assert client.get("/v2").json()["name"] == "vision-service"


def test_model_metadata(client: httpx.Client) -> None:
    body = client.get("/v2/models/colours").json()
    assert body["versions"] == ["1", "2"]
    assert body["inputs"] == [{"name": "image", "datatype": "FP32", "shape": [-1, 8, 8, 3]}]
    assert body["outputs"] == [{"name": "probs", "datatype": "FP32", "shape": [-1, 3]}]
    assert client.get("/v2/models/colours/versions/1/ready").status_code == 200
    assert client.get("/v2/models/colours/versions/9/ready").status_code == 404


def test_tensor_inference_matches_the_model(client: httpx.Client) -> None:
    batch = np.zeros((2, 8, 8, 3), dtype=np.float32)
    batch[0, ..., 1] = 200  # green
    batch[1, ..., 2] = 100  # blue
    request = {
        "id": "r1",
        "inputs": [
            {"name": "image", "shape": [2, 8, 8, 3], "datatype": "FP32", "data": batch.ravel().tolist()}
        ],
    }
    body = client.post("/v2/models/colours/versions/1/infer", json=request).json()
    assert body["model_name"] == "colours"
    assert body["model_version"] == "1"
    assert body["id"] == "r1"
    (output,) = body["outputs"]
    assert output["name"] == "probs"
    assert output["shape"] == [2, 3]
    probabilities = np.asarray(output["data"]).reshape(2, 3)
    expected = np.exp([[0, 20, 0], [0, 0, 10]])
    np.testing.assert_allclose(probabilities, expected / expected.sum(axis=1, keepdims=True), rtol=1e-5)


@pytest.mark.parametrize(
    ("tensor", "fragment"),
    [
        ({"name": "image", "shape": [1, 4, 4, 3], "datatype": "FP32", "data": [0.0] * 48}, "shape"),
        ({"name": "pixels", "shape": [1, 8, 8, 3], "datatype": "FP32", "data": [0.0] * 192}, "named"),
        ({"name": "image", "shape": [1, 8, 8, 3], "datatype": "FP32", "data": [0.0] * 5}, "fill"),
    ],
)
def test_bad_tensors_are_400_with_the_protocols_error_body(
    client: httpx.Client, tensor: dict, fragment: str
) -> None:
    response = client.post("/v2/models/colours/infer", json={"inputs": [tensor]})
    assert response.status_code == 400
    assert fragment in response.json()["error"]


def colours_request(**fields: object) -> dict:
    pixels = np.zeros((1, 8, 8, 3), dtype=np.float32)
    pixels[..., 0] = 255
    tensor = {"name": "image", "shape": [1, 8, 8, 3], "datatype": "FP32", "data": pixels.tolist()}
    return {"inputs": [tensor], **fields}


@pytest.mark.parametrize("content_type", [None, "application/json", "application/octet-stream"])
def test_the_json_body_is_read_whatever_its_content_type(
    client: httpx.Client, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.post(
        "/v2/models/colours/infer", content=json.dumps(colours_request()).encode(), headers=headers
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "id" not in body
    assert np.argmax(body["outputs"][0]["data"]) == 0  # red, from nested data


def test_binary_input_and_output(client: httpx.Client) -> None:
    pixels = np.zeros((1, 8, 8, 3), dtype="<f4")
    pixels[..., 2] = 200
    tensor = {
        "name": "image",
        "shape": [1, 8, 8, 3],
        "datatype": "FP32",
        "parameters": {"binary_data_size": 768},
    }
    header = json.dumps({"inputs": [tensor], "parameters": {"binary_data_output": True}}).encode()
    response = client.post(
        "/v2/models/colours/infer",
        content=header + pixels.tobytes(),
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert response.status_code == 200, response.text
    length = int(response.headers["inference-header-content-length"])
    (output,) = json.loads(response.content[:length])["outputs"]
    assert output["parameters"] == {"binary_data_size": 12}
    probabilities = np.frombuffer(response.content[length:], dtype="<f4")
    assert probabilities.argmax() == 2


@pytest.mark.parametrize(
    ("path", "body", "status", "fragment"),
    [
        ("/v2/models/colours/infer", b"{not json", 400, "malformed inference request"),
        ("/v2/models/nope/infer", b"{not json", 404, "no model named 'nope'"),
        ("/v2/models/colours/versions/9/infer", b"{}", 404, "has no version 9"),
        ("/v2/models/colours/versions/latest/infer", b"{}", 400, "version"),
        (
            "/v2/models/colours/infer",
            json.dumps(colours_request(outputs=[{"name": "x"}])).encode(),
            400,
            "'x'",
        ),
    ],
)
def test_errors_are_the_protocols_string_bodies(
    client: httpx.Client, path: str, body: bytes, status: int, fragment: str
) -> None:
    response = client.post(path, content=body)
    assert response.status_code == status
    error = response.json()["error"]
    assert isinstance(error, str)
    assert fragment in error


def test_health_and_model_ready_bodies(client: httpx.Client) -> None:
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2/models/colours/ready").json() == {"name": "colours", "ready": True}
    missing = client.get("/v2/models/nope/ready")
    assert missing.status_code == 404
    assert isinstance(missing.json()["error"], str)
    assert client.get("/v2").json()["extensions"] == ["binary_tensor_data"]


def test_an_oversized_streamed_body_is_413_in_the_protocols_body(client: httpx.Client) -> None:
    def chunks():
        for _ in range(30):
            yield b"\0" * 100_000

    response = client.post("/v2/models/colours/infer", content=chunks())
    assert response.status_code == 413
    assert "over the limit" in response.json()["error"]
