"""tritonclient.grpc, sync and aio, against a live server's gRPC port: health, metadata, inference with raw
and typed tensors, model control, and every refusal with its status and REST's message."""

from __future__ import annotations

import asyncio
import json

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.grpc.aio as triton_aio
import tritonclient.http as triton_http
from bundled import DIGITS_SIZE, digit_png, held_out_digits, served_pixels
from conftest import BUNDLED_KEYS, REPO_ROOT, LiveServer, ServerFactory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from oip_grpc import MODEL_INFER, model_infer
from ports import free_port
from scrape import sample_value
from tritonclient.grpc import service_pb2
from tritonclient.utils import InferenceServerException

from service.settings import DEFAULT_MODELS

BUNDLED = ["digits", "shapes-classifier", "shapes-classifier-int8", "shapes-detector", "shapes-segmenter"]
API = {"x-api-key": BUNDLED_KEYS["api"]}
ADMIN = {"authorization": f"Bearer {BUNDLED_KEYS['admin']}"}
MAX_UPLOAD_BYTES = 2_000_000


@pytest.fixture(scope="module")
def server(start_server: ServerFactory) -> LiveServer:
    return start_server(
        REPO_ROOT / "models",
        default_models=json.dumps(DEFAULT_MODELS),
        api_keys=BUNDLED_KEYS["api"],
        admin_key=BUNDLED_KEYS["admin"],
        grpc_port=free_port(),
        max_upload_bytes=MAX_UPLOAD_BYTES,
    )
    return server


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    images, targets = held_out_digits()
    return np.stack([served_pixels(digit_png(image), DIGITS_SIZE, 1) for image in images[:10]]), targets[:10]


@pytest.fixture
def client(server: LiveServer):
    client = triton_grpc.InferenceServerClient(server.grpc)
    yield client
    client.close()


def image_input(module, pixels: np.ndarray, name: str = "image"):
    tensor = module.InferInput(name, list(pixels.shape), "FP32")
    tensor.set_data_from_numpy(pixels)
    return tensor


def test_live_ready_and_the_server_s_extensions(client) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    metadata = client.get_server_metadata()
    assert (metadata.name, list(metadata.extensions)) == (
        "vision-service",
        ["binary_tensor_data", "model_repository"],
    )


def test_metadata_of_every_bundled_model_is_rest_s(client, server: LiveServer) -> None:
    rest = triton_http.InferenceServerClient(server.url.removeprefix("http://"))
    try:
        for name in BUNDLED:
            assert client.is_model_ready(name, headers=API)
            ours = client.get_model_metadata(name, headers=API, as_json=True)
            theirs = rest.get_model_metadata(name, headers={"X-API-Key": BUNDLED_KEYS["api"]})
            assert ours["name"] == theirs["name"] == name
            assert ours["versions"] == theirs["versions"]
            for side in ("inputs", "outputs"):
                assert [(t["name"], t["datatype"], [int(d) for d in t["shape"]]) for t in ours[side]] == [
                    (t["name"], t["datatype"], t["shape"]) for t in theirs[side]
                ]
    finally:
        rest.close()


def test_a_ten_image_batch_equals_rest_s_answer_and_echoes_the_request_id(
    client, server: LiveServer, digits
) -> None:
    pixels, targets = digits
    answer = client.infer("digits", [image_input(triton_grpc, pixels)], request_id="batch-10", headers=API)
    assert answer.get_response().id == "batch-10"
    probabilities = answer.as_numpy("probabilities")
    assert probabilities.shape == (10, 10)
    assert np.sum(probabilities.argmax(axis=1) == targets) >= 9
    rest = triton_http.InferenceServerClient(server.url.removeprefix("http://"))
    try:
        expected = rest.infer(
            "digits", [image_input(triton_http, pixels)], headers={"X-API-Key": BUNDLED_KEYS["api"]}
        ).as_numpy("probabilities")
    finally:
        rest.close()
    np.testing.assert_allclose(probabilities, expected, rtol=1e-6)


def test_typed_contents_are_answered_typed_and_equal_raw(server: LiveServer, digits) -> None:
    pixels, _ = digits
    tensor = service_pb2.ModelInferRequest.InferInputTensor(
        name="image", datatype="FP32", shape=[2, 32, 32, 1]
    )
    tensor.contents.fp32_contents.extend(pixels[:2].ravel().tolist())
    request = service_pb2.ModelInferRequest(model_name="digits", id="typed", inputs=[tensor])
    with grpc.insecure_channel(server.grpc) as channel:
        infer = model_infer(channel)
        typed = infer(request, metadata=tuple(API.items()))
        request.inputs[0].ClearField("contents")
        request.raw_input_contents.append(pixels[:2].astype("<f4").tobytes())
        raw = infer(request, metadata=tuple(API.items()))
    assert (typed.id, typed.model_name, typed.model_version) == ("typed", "digits", "1")
    assert not typed.raw_output_contents
    assert list(typed.outputs[0].shape) == [2, 10]
    from_raw = np.frombuffer(raw.raw_output_contents[0], dtype="<f4")
    np.testing.assert_allclose(np.asarray(typed.outputs[0].contents.fp32_contents), from_raw, rtol=1e-6)


def test_the_aio_client_does_all_the_sync_client_does(server: LiveServer, digits) -> None:
    pixels, targets = digits

    async def main() -> tuple[list[int], np.ndarray]:
        client = triton_aio.InferenceServerClient(server.grpc)
        try:
            assert await client.is_server_live()
            assert await client.is_server_ready()
            for name in BUNDLED:
                assert await client.is_model_ready(name, headers=API)
                assert (await client.get_model_metadata(name, headers=API)).name == name
            alone = await asyncio.gather(
                *(client.infer("digits", [image_input(triton_aio, p[None])], headers=API) for p in pixels)
            )
            batch = await client.infer(
                "digits", [image_input(triton_aio, pixels)], request_id="aio-10", headers=API
            )
            assert batch.get_response().id == "aio-10"
            index = await client.get_model_repository_index(headers=ADMIN)
            assert ("digits", "READY") in [(model.name, model.state) for model in index.models]
            await client.unload_model("digits", headers=ADMIN)
            with pytest.raises(InferenceServerException):
                await client.get_model_metadata("digits", headers=API)
            await client.load_model("digits", headers=ADMIN)
            assert await client.is_model_ready("digits", headers=API)
            return [int(answer.as_numpy("probabilities").argmax()) for answer in alone], batch.as_numpy(
                "probabilities"
            )
        finally:
            await client.close()

    one_by_one, batched = asyncio.run(main())
    assert np.sum(np.asarray(one_by_one) == targets) >= 9
    assert batched.shape == (10, 10)
    assert list(batched.argmax(axis=1)) == one_by_one


def test_repository_index_unload_and_load_with_the_admin_key(client) -> None:
    index = client.get_model_repository_index(headers=ADMIN)
    assert ("digits", "1", "READY") in [(m.name, m.version, m.state) for m in index.models]
    client.unload_model("digits", headers=ADMIN)
    with pytest.raises(InferenceServerException) as gone:
        client.get_model_metadata("digits", headers=API)
    assert gone.value.status() == "StatusCode.NOT_FOUND"
    client.load_model("digits", headers=ADMIN)
    assert client.is_model_ready("digits", headers=API)


@pytest.mark.parametrize(
    ("call", "status", "message"),
    [
        (
            lambda c: c.infer(
                "digits", [image_input(triton_grpc, np.zeros((1, 8, 8, 1), np.float32))], headers=API
            ),
            "INVALID_ARGUMENT",
            "input 'image' must have shape [N, 32, 32, 1] with 1 <= N <= 16, not [1, 8, 8, 1]",
        ),
        (
            lambda c: c.get_model_metadata("nope", headers=API),
            "NOT_FOUND",
            "no model named 'nope'",
        ),
        (
            lambda c: c.get_model_metadata("digits"),
            "UNAUTHENTICATED",
            "an API key is required: send it as X-API-Key or Authorization: Bearer",
        ),
        (
            lambda c: c.get_model_metadata("digits", headers={"x-api-key": "wrong"}),
            "PERMISSION_DENIED",
            "the API key is not accepted",
        ),
        (
            lambda c: c.unload_model("digits", headers=API),
            "PERMISSION_DENIED",
            "the admin key is not accepted",
        ),
    ],
    ids=["wrong-shape", "unknown-model", "missing-key", "wrong-key", "api-key-for-model-control"],
)
def test_refusals_have_their_status_and_rest_s_message(client, call, status: str, message: str) -> None:
    with pytest.raises(InferenceServerException) as refused:
        call(client)
    assert refused.value.status() == f"StatusCode.{status}"
    assert refused.value.message() == message


def test_a_message_over_the_upload_limit_is_refused_by_size(client) -> None:
    too_big = np.zeros((1, 32, 32, 1 + MAX_UPLOAD_BYTES // 4096), np.float32)
    with pytest.raises(InferenceServerException) as refused:
        client.infer("digits", [image_input(triton_grpc, too_big)], headers=API)
    assert refused.value.status() == "StatusCode.RESOURCE_EXHAUSTED"


def test_the_key_is_checked_before_the_message_is_parsed(server: LiveServer) -> None:
    """Bytes that are no protobuf at all: without a key the answer can only come from the metadata."""
    with grpc.insecure_channel(server.grpc) as channel:
        infer = channel.unary_unary(MODEL_INFER)
        with pytest.raises(grpc.RpcError) as refused:
            infer(b"\xff" * 64)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        with pytest.raises(grpc.RpcError) as unparsed:
            infer(b"\xff" * 64, metadata=tuple(API.items()))
        assert unparsed.value.code() not in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.OK)


def test_health_serves_the_process_and_the_protocol(server: LiveServer) -> None:
    with grpc.insecure_channel(server.grpc) as channel:
        check = health_pb2_grpc.HealthStub(channel).Check
        for service in ("", "inference.GRPCInferenceService"):
            answer = check(health_pb2.HealthCheckRequest(service=service))
            assert answer.status == health_pb2.HealthCheckResponse.SERVING, service


def encoded_images(module, *files: bytes):
    tensor = module.InferInput("image", [len(files)], "BYTES")
    tensor.set_data_from_numpy(np.array(files, dtype=np.object_))
    return tensor


def test_an_encoded_jpeg_is_answered_as_classify_answers_it(client, server: LiveServer) -> None:
    star = (REPO_ROOT / "docs" / "examples" / "star.jpg").read_bytes()
    result = client.infer(
        "shapes-classifier", [encoded_images(triton_grpc, star)], parameters={"top_k": 5}, headers=API
    )
    (document,) = result.as_numpy("answer")
    over_grpc = json.loads(document)
    over_rest = server.client.post(
        "/classify", params={"top_k": 5}, files={"image": star}, headers={"X-API-Key": BUNDLED_KEYS["api"]}
    ).json()
    assert [p["label"] for p in over_grpc["results"][0]["predictions"]] == [
        p["label"] for p in over_rest["results"][0]["predictions"]
    ]
    assert len(over_grpc["results"][0]["predictions"]) == 5
    np.testing.assert_allclose(
        [p["probability"] for p in over_grpc["results"][0]["predictions"]],
        [p["probability"] for p in over_rest["results"][0]["predictions"]],
        rtol=1e-6,
    )


def test_encoded_images_keep_their_good_answers_with_partial(client) -> None:
    shapes = (REPO_ROOT / "docs" / "examples" / "shapes.jpg").read_bytes()
    result = client.infer(
        "shapes-detector",
        [encoded_images(triton_grpc, shapes, b"not an image")],
        parameters={"partial": True},
        headers=API,
    )
    found, failed = json.loads(result.as_numpy("answer")[0])["results"]
    assert {d["label"] for d in found["detections"]} >= {"star"}
    assert failed["error"]["code"] == "unsupported_image"
    assert failed["error"]["detail"] == {"index": 1}


def test_an_option_out_of_range_is_refused_with_its_name(client) -> None:
    star = (REPO_ROOT / "docs" / "examples" / "star.jpg").read_bytes()
    with pytest.raises(InferenceServerException) as refused:
        client.infer(
            "shapes-classifier", [encoded_images(triton_grpc, star)], parameters={"top_k": 0}, headers=API
        )
    assert refused.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert refused.value.message() == "parameters.top_k: Input should be greater than or equal to 1"


def test_calls_are_counted_in_rest_s_metrics_with_their_protocol_and_status(
    client, server: LiveServer
) -> None:
    def count(status: str) -> float:
        labels = {
            "protocol": "grpc",
            "route": "/inference.GRPCInferenceService/ModelMetadata",
            "status": status,
        }
        return sample_value(server.client.get("/metrics").text, "vision_requests_total", labels)

    before = {status: count(status) for status in ("OK", "NOT_FOUND", "UNAUTHENTICATED")}
    client.get_model_metadata("digits", headers=API)
    for call in (
        lambda: client.get_model_metadata("nope", headers=API),
        lambda: client.get_model_metadata("digits"),
    ):
        with pytest.raises(InferenceServerException):
            call()
    assert {status: count(status) - before[status] for status in before} == {
        "OK": 1,
        "NOT_FOUND": 1,
        "UNAUTHENTICATED": 1,
    }
