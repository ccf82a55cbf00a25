"""The Open Inference Protocol REST endpoints over the same models."""

from __future__ import annotations

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
def test_bad_tensors_are_422(client: httpx.Client, tensor: dict, fragment: str) -> None:
    response = client.post("/v2/models/colours/infer", json={"inputs": [tensor]})
    assert response.status_code == 422
    assert fragment in response.json()["error"]["message"]
