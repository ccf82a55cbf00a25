"""The Open Inference Protocol bodies: JSON tensors, nested or flat, and Triton's binary tensor data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from service.core.engine import ModelId, TensorAnswer
from service.core.errors import InvalidInputError
from service.http.oip import HEADER_LENGTH, MAX_DIMENSION, TensorRequest, encode_response, parse_request

IMAGE = np.arange(12, dtype=np.float32).reshape(1, 2, 2, 3)
# Values one input may hold: four images of IMAGE's size.
MAX_VALUES = 48


def parse(body: bytes, length: str | None = None) -> TensorRequest:
    return parse_request(body, length, max_values=MAX_VALUES)


def json_input(data: object, shape: list[int] | None = None) -> dict:
    return {"name": "image", "shape": shape or [1, 2, 2, 3], "datatype": "FP32", "data": data}


def binary_body(request: dict, *tensors: bytes) -> tuple[bytes, str]:
    header = json.dumps(request).encode()
    return header + b"".join(tensors), str(len(header))


@pytest.mark.parametrize("data", [IMAGE.ravel().tolist(), IMAGE.tolist(), IMAGE[0].tolist()])
def test_flat_and_nested_json_data_give_the_same_tensor(data: list) -> None:
    request = parse(json.dumps({"inputs": [json_input(data)]}).encode(), None)
    np.testing.assert_array_equal(request.inputs["image"], IMAGE)
    assert request.inputs["image"].dtype == np.float32


def test_binary_tensors_follow_the_json_in_order() -> None:
    second = np.full((1, 2, 2, 3), 7, dtype="<f4")
    inputs = [
        {"name": "image", "shape": [1, 2, 2, 3], "datatype": "FP32", "parameters": {"binary_data_size": 48}},
        {"name": "other", "shape": [1, 2, 2, 3], "datatype": "FP32", "parameters": {"binary_data_size": 48}},
    ]
    body, length = binary_body({"inputs": inputs}, IMAGE.astype("<f4").tobytes(), second.tobytes())
    request = parse(body, length)
    np.testing.assert_array_equal(request.inputs["image"], IMAGE)
    np.testing.assert_array_equal(request.inputs["other"], second)


@pytest.mark.parametrize(
    ("body", "length", "fragment"),
    [
        (b"{not json", None, "malformed inference request"),
        (b'{"inputs": []}', None, "inputs"),
        (json.dumps({"inputs": [json_input([1.0] * 5)]}).encode(), None, "5 values do not fill shape"),
        (json.dumps({"inputs": [json_input([[1.0], [1.0, 2.0]])]}).encode(), None, "nested evenly"),
        (json.dumps({"inputs": [json_input(["a"] * 12)]}).encode(), None, "must be numbers"),
        (json.dumps({"inputs": [{**json_input(None), "datatype": "INT64"}]}).encode(), None, "takes FP32"),
        (json.dumps({"inputs": [json_input(None)]}).encode(), None, "neither data nor"),
        (json.dumps({"inputs": [json_input([0.0] * 12)] * 2}).encode(), None, "given twice"),
        (b'{"inputs": []}', "abc", "must be an integer"),
        (b'{"inputs": []}', "99", "but the body has 14 bytes"),
        (json.dumps({"inputs": [json_input([], [0, 2, 2, 3])]}).encode(), None, "holds 0 values"),
        (json.dumps({"inputs": [json_input([0.0] * 60, [5, 2, 2, 3])]}).encode(), None, "takes 1 to 48"),
        (json.dumps({"inputs": [json_input([], [2**63, 0])]}).encode(), None, "less than or equal to"),
        (json.dumps({"inputs": [json_input([0.0], [1] * 65)]}).encode(), None, "at most 8 items"),
        (json.dumps({"inputs": [json_input([0.0], [MAX_DIMENSION + 1])]}).encode(), None, "less than or"),
        (json.dumps({"inputs": [json_input([0] * 5000)]}).encode(), None, "more values"),
        (b'{"inputs": [{"data": ' + b"[" * 5000 + b"]" * 5000 + b"}]}", None, "more nested lists"),
        (b'{"inputs": [{"data": ' + b'{"a":' * 5000 + b"0" + b"}" * 5000 + b"}]}", None, "more objects"),
    ],
)
def test_bodies_that_cannot_be_used_are_invalid_input(body: bytes, length: str | None, fragment: str) -> None:
    with pytest.raises(InvalidInputError, match=fragment.replace("[", r"\[")):
        parse(body, length)


def test_a_shape_of_huge_dimensions_is_refused_with_a_short_message() -> None:
    # 20,000 dimensions of 10**18: their product alone took seconds, and the message quoted them all.
    body = json.dumps({"inputs": [json_input([0.0], [10**18] * 20_000)]}).encode()
    with pytest.raises(InvalidInputError) as refused:
        parse(body)
    assert len(str(refused.value)) < 300


def test_a_header_length_is_quoted_in_an_excerpt() -> None:
    with pytest.raises(InvalidInputError) as refused:
        parse(b'{"inputs": []}', "x" * 100_000)
    assert len(str(refused.value)) < 200


@pytest.mark.parametrize(
    ("size", "extra", "fragment"),
    [(47, b"", "is not the 48 bytes"), (48, b"", "ends before"), (48, b"\0" * 52, "4 bytes of binary data")],
)
def test_binary_sizes_must_add_up(size: int, extra: bytes, fragment: str) -> None:
    tensor = {
        "name": "image",
        "shape": [1, 2, 2, 3],
        "datatype": "FP32",
        "parameters": {"binary_data_size": size},
    }
    body, length = binary_body({"inputs": [tensor]}, extra)
    with pytest.raises(InvalidInputError, match=fragment):
        parse(body, length)


PROBS = np.array([[0.25, 0.75]], np.float32)
LOGITS = np.array([[1.0, 2.0]], np.float32)
ANSWER = TensorAnswer(ModelId("m", 3), {"probs": PROBS, "logits": LOGITS})


def request_with(**fields: object) -> bytes:
    return json.dumps({"inputs": [json_input([0.0] * 12)], **fields}).encode()


def split_response(body: bytes, headers: dict[str, str]) -> tuple[dict, bytes]:
    length = int(headers[HEADER_LENGTH])
    return json.loads(body[:length]), body[length:]


def test_json_response_echoes_the_id_and_omits_it_when_absent() -> None:
    body, headers = encode_response(ANSWER, parse(request_with(id="7"), None))
    assert headers == {"Content-Type": "application/json"}
    response = json.loads(body)
    assert (response["model_name"], response["model_version"], response["id"]) == ("m", "3", "7")
    assert response["outputs"][0] == {
        "name": "probs",
        "shape": [1, 2],
        "datatype": "FP32",
        "data": [0.25, 0.75],
    }
    plain, _ = encode_response(ANSWER, parse(request_with(), None))
    assert "id" not in json.loads(plain)


def test_binary_data_output_sends_every_output_as_binary_in_order() -> None:
    request = parse(request_with(parameters={"binary_data_output": True}), None)
    body, headers = encode_response(ANSWER, request)
    assert headers["Content-Type"] == "application/octet-stream"
    header, tail = split_response(body, headers)
    assert [output["parameters"]["binary_data_size"] for output in header["outputs"]] == [8, 8]
    assert all("data" not in output for output in header["outputs"])
    assert tail == PROBS.astype("<f4").tobytes() + LOGITS.astype("<f4").tobytes()


def test_each_requested_output_says_how_it_is_sent() -> None:
    outputs = [{"name": "logits", "parameters": {"binary_data": True}}, {"name": "probs"}]
    request = parse(request_with(outputs=outputs), None)
    assert request.outputs == ["logits", "probs"]
    body, headers = encode_response(ANSWER, request)
    header, tail = split_response(body, headers)
    by_name = {output["name"]: output for output in header["outputs"]}
    assert by_name["probs"]["data"] == [0.25, 0.75]
    assert by_name["logits"]["parameters"] == {"binary_data_size": 8}
    assert tail == LOGITS.tobytes()


def test_an_output_can_opt_out_of_binary_data_output() -> None:
    outputs = [{"name": "probs", "parameters": {"binary_data": False}}]
    request = parse(request_with(outputs=outputs, parameters={"binary_data_output": True}), None)
    assert not request.binary("probs")
