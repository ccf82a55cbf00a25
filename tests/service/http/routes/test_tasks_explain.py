"""/explain and /explain/json over a live server with the hand-built classifiers whose heat maps are exact."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import LiveServer, ServerFactory, encode
from PIL import Image

RED = (255, 0, 0)


@pytest.fixture(scope="module")
def client(start_server: ServerFactory, explaining_models_dir: Path) -> httpx.Client:
    server: LiveServer = start_server(explaining_models_dir, max_images=4)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def red_corner(width: int = 8, height: int = 8) -> bytes:
    pixels = np.full((height, width, 3), 128, np.uint8)
    pixels[: height // 2, : width // 2] = RED
    return encode(Image.fromarray(pixels), "PNG")


def post(client: httpx.Client, path: str, files: list[bytes], **params: object) -> httpx.Response:
    return client.post(
        path, params=params, files=[("image", (f"{i}.png", data)) for i, data in enumerate(files)]
    )


def test_explain_answers_the_picture_with_its_class_in_headers(client: httpx.Client) -> None:
    response = post(client, "/explain", [red_corner(120, 90)], model="colours-explained")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert (response.headers["x-class"], response.headers["x-model-name"]) == ("red", "colours-explained")
    assert 0.33 < float(response.headers["x-score"]) <= 1
    assert Image.open(io.BytesIO(response.content)).size == (120, 90)


def test_explain_json_answers_a_grid_per_image_in_order(client: httpx.Client) -> None:
    blue = encode(Image.new("RGB", (8, 8), (0, 0, 255)), "PNG")
    response = post(client, "/explain/json", [red_corner(), blue], model="colours-explained")
    assert response.status_code == 200, response.text
    first, second = response.json()["results"]
    assert (first["label"], first["class_id"], second["label"]) == ("red", 0, "blue")
    assert first["image"] == {"width": 8, "height": 8}
    expected = np.zeros((8, 8))
    expected[:4, :4] = 1
    assert np.array_equal(np.array(first["grid"]), expected)
    assert np.array_equal(np.array(second["grid"]), np.zeros((8, 8)))  # a flat map


def test_the_class_parameter_picks_another_label(client: httpx.Client) -> None:
    response = post(client, "/explain/json", [red_corner()], model="colours-explained", **{"class": "green"})
    result = response.json()["results"][0]
    assert result["label"] == "green"
    assert np.array(result["grid"])[:4, :4].max() == 0


def test_a_partial_batch_keeps_its_good_grids(client: httpx.Client) -> None:
    response = post(
        client, "/explain/json", [red_corner(), b"no image"], model="colours-explained", partial="true"
    )
    good, bad = response.json()["results"]
    assert good["label"] == "red"
    assert bad["error"]["code"] == "unsupported_image"
    assert bad["error"]["detail"] == {"index": 1, "filename": "1.png"}


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"model": "colours"}, 422, "cannot_explain"),
        ({"model": "colours-explained", "class": "purple"}, 422, "unknown_label"),
        ({"model": "nope"}, 404, "model_not_found"),
    ],
    ids=["no heatmap", "unknown label", "unknown model"],
)
@pytest.mark.parametrize("path", ["/explain", "/explain/json"])
def test_explain_refusals_are_coded(
    client: httpx.Client, path: str, params: dict[str, str], status: int, code: str
) -> None:
    response = post(client, path, [red_corner()], **params)
    assert (response.status_code, response.json()["error"]["code"]) == (status, code)


def test_a_picture_holds_one_image(client: httpx.Client) -> None:
    response = post(client, "/explain", [red_corner(), red_corner()], model="colours-explained")
    assert response.status_code == 400
    assert "/explain/json" in response.json()["error"]["message"]


def test_models_say_which_versions_can_explain(client: httpx.Client) -> None:
    outputs = {
        model["name"]: model["versions"][0]["outputs"] for model in client.get("/models").json()["models"]
    }
    assert outputs == {
        "colours": ["probabilities"],
        "colours-explained": ["probabilities", "heatmap"],
        "colours-letterboxed": ["probabilities", "heatmap"],
    }
