"""tritonclient, the standard Open Inference Protocol client nobody here wrote, against the live service.

It speaks to the bundled models as a Triton user's code would: http and aio, JSON and binary tensors.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
import tritonclient.http as triton_http
import tritonclient.http.aio as triton_aio
from bundled import DIGITS_SIZE, digit_png, held_out_digits, served_pixels
from conftest import LiveServer, encode
from tritonclient.utils import InferenceServerException

from training.data.synth import render_scene

DIGITS = 50
ENOUGH = 48
# Requests in flight at once from the aio client: well under the service's queue of 32, which sheds the rest.
IN_FLIGHT = 8
# (inputs as binary, outputs as binary); None: the client's defaults (binary both ways, no outputs named).
MODES: dict[str, tuple[bool, bool] | None] = {
    "json": (False, False),
    "binary": (True, True),
    "json-in-binary-out": (False, True),
    "defaults": None,
}


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """The first 50 held-out digits as the [N, 32, 32, 1] tensors the service makes of their PNGs."""
    images, targets = held_out_digits()
    pixels = np.stack([served_pixels(digit_png(image), DIGITS_SIZE, 1) for image in images[:DIGITS]])
    return pixels, targets[:DIGITS]


def host_of(server: LiveServer) -> str:
    return server.url.removeprefix("http://")


def request_for(module, pixels: np.ndarray, mode: str) -> tuple[list, list | None]:
    """tritonclient inputs and requested outputs for one batch, in `mode`."""
    tensor = module.InferInput("image", list(pixels.shape), "FP32")
    if MODES[mode] is None:
        tensor.set_data_from_numpy(pixels)
        return [tensor], None
    binary_in, binary_out = MODES[mode]
    tensor.set_data_from_numpy(pixels, binary_data=binary_in)
    return [tensor], [module.InferRequestedOutput("probabilities", binary_data=binary_out)]


@pytest.mark.parametrize("mode", MODES)
def test_http_client_reads_the_digits(bundled_server: LiveServer, digits, mode: str) -> None:
    pixels, targets = digits
    client = triton_http.InferenceServerClient(host_of(bundled_server))
    try:
        predicted = []
        for image in pixels:
            inputs, outputs = request_for(triton_http, image[None], mode)
            result = client.infer("digits", inputs, outputs=outputs, request_id=f"digit-{len(predicted)}")
            assert result.get_response()["id"] == f"digit-{len(predicted)}"
            predicted.append(int(result.as_numpy("probabilities").argmax()))
    finally:
        client.close()
    assert np.sum(np.asarray(predicted) == targets) >= ENOUGH


@pytest.mark.parametrize("mode", MODES)
def test_aio_client_reads_the_digits_concurrently(bundled_server: LiveServer, digits, mode: str) -> None:
    pixels, targets = digits

    async def main() -> list[np.ndarray]:
        client = triton_aio.InferenceServerClient(host_of(bundled_server))
        slots = asyncio.Semaphore(IN_FLIGHT)

        async def infer(image: np.ndarray) -> np.ndarray:
            inputs, outputs = request_for(triton_aio, image[None], mode)
            async with slots:
                result = await client.infer("digits", inputs, outputs=outputs)
            return result.as_numpy("probabilities")

        try:
            return list(await asyncio.gather(*(infer(image) for image in pixels)))
        finally:
            await client.close()

    probabilities = asyncio.run(main())
    assert all(p.shape == (1, 10) for p in probabilities)
    assert np.sum(np.concatenate(probabilities).argmax(axis=1) == targets) >= ENOUGH


def test_a_batch_comes_back_in_order(bundled_server: LiveServer, digits) -> None:
    pixels, _ = digits
    client = triton_http.InferenceServerClient(host_of(bundled_server))
    try:
        inputs, outputs = request_for(triton_http, pixels[:10], "binary")
        batched = client.infer("digits", inputs, outputs=outputs).as_numpy("probabilities")
        inputs, outputs = request_for(triton_http, pixels[3:4], "binary")
        alone = client.infer("digits", inputs, model_version="1", outputs=outputs).as_numpy("probabilities")
    finally:
        client.close()
    assert batched.shape == (10, 10)
    np.testing.assert_allclose(batched[3], alone[0], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    ("model", "name", "shape", "status", "fragment"),
    [
        ("digits", "image", [1, 8, 8, 1], "400", "must have shape [N, 32, 32, 1]"),
        ("nope", "image", [1, 32, 32, 1], "404", "no model named 'nope'"),
        ("digits", "pixels", [1, 32, 32, 1], "400", "unknown input 'pixels'"),
    ],
)
def test_errors_read_as_sentences_with_their_status(
    bundled_server: LiveServer, model: str, name: str, shape: list[int], status: str, fragment: str
) -> None:
    client = triton_http.InferenceServerClient(host_of(bundled_server))
    tensor = triton_http.InferInput(name, shape, "FP32")
    tensor.set_data_from_numpy(np.zeros(shape, dtype=np.float32))
    try:
        with pytest.raises(InferenceServerException) as raised:
            client.infer(model, [tensor])
    finally:
        client.close()
    text = str(raised.value)
    assert raised.value.status() == status
    assert text.startswith(f"[{status}] ")
    assert fragment in text


def test_server_and_model_metadata(bundled_server: LiveServer) -> None:
    client = triton_http.InferenceServerClient(host_of(bundled_server))
    try:
        assert client.is_server_live()
        assert client.is_server_ready()
        assert client.is_model_ready("digits")
        assert client.is_model_ready("digits", "1")
        assert not client.is_model_ready("nope")
        server = client.get_server_metadata()
        model = client.get_model_metadata("digits")
    finally:
        client.close()
    assert server["name"] == "vision-service"
    assert "binary_tensor_data" in server["extensions"]
    assert model["inputs"] == [{"name": "image", "datatype": "FP32", "shape": [-1, 32, 32, 1]}]
    assert [output["name"] for output in model["outputs"]] == ["probabilities"]


def test_v2_gives_the_classify_probabilities_of_the_same_pixels(bundled_server: LiveServer) -> None:
    scene = render_scene(np.random.default_rng(20261201))
    png = encode(scene.image, "PNG")
    pixels = served_pixels(png, 64, 3)[None]
    classify = bundled_server.client.post(
        "/classify", params={"model": "shapes-classifier", "top_k": 6}, files={"image": ("s.png", png)}
    )
    assert classify.status_code == 200, classify.text
    predictions = classify.json()["results"][0]["predictions"]
    labels = bundled_server.client.get("/models/shapes-classifier").json()["versions"][-1]["labels"]
    expected = np.array(
        [next(p["probability"] for p in predictions if p["label"] == label) for label in labels]
    )

    client = triton_http.InferenceServerClient(host_of(bundled_server))
    try:
        inputs, outputs = request_for(triton_http, pixels, "binary")
        probabilities = client.infer("shapes-classifier", inputs, outputs=outputs).as_numpy("probabilities")
    finally:
        client.close()
    np.testing.assert_allclose(probabilities[0], expected, rtol=1e-6, atol=1e-7)


def test_the_heatmap_is_one_more_output_and_gives_the_explain_grid(bundled_server: LiveServer) -> None:
    png = encode(render_scene(np.random.default_rng(20261207)).image, "PNG")
    client = triton_http.InferenceServerClient(host_of(bundled_server))
    try:
        outputs = client.get_model_metadata("shapes-classifier")["outputs"]
        tensor = triton_http.InferInput("image", [1, 64, 64, 3], "FP32")
        tensor.set_data_from_numpy(served_pixels(png, 64, 3)[None])
        answer = client.infer("shapes-classifier", [tensor])  # every output, as a Triton user gets them
    finally:
        client.close()
    assert {output["name"]: output["shape"] for output in outputs} == {
        "probabilities": [-1, 6],
        "heatmap": [-1, -1, -1, 6],  # as tf2onnx declares it; every run gives 8x8
    }
    maps, probabilities = answer.as_numpy("heatmap")[0], answer.as_numpy("probabilities")[0]
    assert maps.shape == (8, 8, 6)
    best = int(probabilities.argmax())
    cam = maps[..., best]
    explained = bundled_server.client.post("/explain/json", files={"image": ("s.png", png)}).json()
    grid = np.array(explained["results"][0]["grid"])
    assert explained["results"][0]["class_id"] == best
    np.testing.assert_allclose(grid, (cam - cam.min()) / (cam.max() - cam.min()), atol=1e-4)
