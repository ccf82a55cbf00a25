"""The error answers the OpenAPI document shows, one real example per code.

Each is an answer the server gave with its default settings and the bundled models; tests send the request
behind every one again and check the answer has the example's shape (tests/service/http/test_examples.py).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from service.http.errors import error_body

BUNDLED_MODELS = [
    "digits",
    "shapes-classifier",
    "shapes-classifier-int8",
    "shapes-detector",
    "shapes-segmenter",
]


class ErrorExample(NamedTuple):
    summary: str
    message: str
    detail: Any = None


# An image's error names it: its index in the call, and its file name where it had one (a raw body has none).
RAW_BODY = {"index": 0}
ERROR_EXAMPLES: dict[str, ErrorExample] = {
    "bad_request": ErrorExample(
        "No image in the form", "no image in the request: upload one in the form field 'image'"
    ),
    "empty_image": ErrorExample("An empty upload", "the image is empty (0 bytes)", RAW_BODY),
    "corrupt_image": ErrorExample(
        "A truncated PNG", "the PNG image is truncated or damaged: image file is truncated", RAW_BODY
    ),
    "invalid_input": ErrorExample(
        "Tensors of the wrong shape",
        "input 'image' must have shape [N, 32, 32, 1] with 1 <= N <= 16, not [1, 2, 2, 3]",
    ),
    "unauthorized": ErrorExample(
        "No API key", "an API key is required: send it as X-API-Key or Authorization: Bearer"
    ),
    "forbidden": ErrorExample("A wrong API key", "the API key is not accepted"),
    "model_not_found": ErrorExample(
        "An unknown model", "no model named 'nope'", {"available": BUNDLED_MODELS}
    ),
    "request_timeout": ErrorExample(
        "A body that stalled", "no body bytes arrived for 10 s; 65536 bytes were received"
    ),
    "payload_too_large": ErrorExample(
        "A body over the limit",
        "request body of 20971521 bytes is over the limit of 20971520 bytes",
        {"limit": 20971520},
    ),
    "too_many_images": ErrorExample("Too many images", "more than 16 images in one request"),
    "image_too_large": ErrorExample(
        "Too many pixels",
        "the image is 8000x6000 = 48000000 pixels, over the limit of 40000000 pixels",
        RAW_BODY,
    ),
    "unsupported_media_type": ErrorExample(
        "Not an upload",
        "send images as multipart/form-data (field 'image') or as a raw body with an image Content-Type, "
        "not 'text/plain'",
    ),
    "unsupported_image": ErrorExample(
        "A text file second in a batch",
        "not an image, or not one of JPEG, PNG, WebP, BMP, GIF or TIFF",
        {"index": 1, "filename": "notes.txt"},
    ),
    "invalid_parameter": ErrorExample(
        "A parameter out of range",
        "query.top_k: Input should be greater than or equal to 1",
        [
            {
                "loc": ["query", "top_k"],
                "msg": "Input should be greater than or equal to 1",
                "type": "greater_than_equal",
            }
        ],
    ),
    "wrong_task": ErrorExample(
        "A model of another task",
        "model shapes-segmenter:1 is a segment model, not classify",
        {"model": "shapes-segmenter", "task": "segment", "endpoint": "classify"},
    ),
    "cannot_explain": ErrorExample(
        "A model without a heatmap output",
        "model digits:1 cannot explain: its file has no heatmap output (class activation maps need a "
        "global-pooling and dense head; docs/model-contract.md)",
        {"model": "digits", "outputs": ["probabilities"]},
    ),
    "unknown_label": ErrorExample(
        "A class the model does not have",
        "class: model shapes-classifier:1 has no label 'cat'",
        {"labels": ["circle", "cross", "hexagon", "square", "star", "triangle"]},
    ),
    "overloaded": ErrorExample(
        "Every request-body byte in use",
        "the server's request-body byte budget is in use by other requests (268435456 of 268435456); "
        "this request needs 1000000",
        {"budget": "request-body byte", "capacity": 268435456, "needed": 1000000},
    ),
    "not_ready": ErrorExample("Still loading", "not ready: models are still loading"),
    "shutting_down": ErrorExample(
        "Shut down mid-body",
        "the server is shutting down and this request's body was still arriving; send it again",
    ),
    "deadline_exceeded": ErrorExample(
        "Past the deadline", "the request took longer than its deadline of 60 s", {"deadline_seconds": 60.0}
    ),
}


Examples = dict[str, ErrorExample]

# Where `/v2` says it otherwise: its parameters are in the path, and its bodies are tensors.
V2_EXAMPLES: Examples = {
    "invalid_parameter": ErrorExample(
        "A version below 1", "path.version: Input should be greater than or equal to 1"
    ),
}
REPOSITORY_EXAMPLES: Examples = {
    "invalid_input": ErrorExample(
        "A body that is not a control request",
        "malformed request body: ready: Input should be a valid boolean, unable to interpret input",
    ),
    "load_failed": ErrorExample(
        "A version that fails to load",
        "failed to load 'digits': version 2: model.onnx: cannot be loaded: [ONNXRuntimeError] : 7 : "
        "INVALID_PROTOBUF : Failed to load model because protobuf parsing failed.; still serving version 1",
    ),
    "unauthorized": ErrorExample(
        "No admin key", "the admin key is required: send it as X-API-Key or Authorization: Bearer"
    ),
    "forbidden": ErrorExample("A wrong admin key", "the admin key is not accepted"),
}


def error_examples(
    codes: list[str], *, v2: bool, overrides: Examples | None = None
) -> dict[str, dict[str, Any]]:
    """OpenAPI `examples` for one status: each code's answer in our envelope, or as `/v2` answers it."""
    chosen = {**ERROR_EXAMPLES, **(V2_EXAMPLES if v2 else {}), **(overrides or {})}
    examples: dict[str, dict[str, Any]] = {}
    for code in codes:
        example = chosen[code]
        value = {"error": example.message} if v2 else error_body(code, example.message, example.detail)
        examples[code] = {"summary": example.summary, "value": value}
    return examples


# scikit-learn's first handwritten 7 (0..16 on 8x8), the picture docs/examples/digit.png holds at 32x32.
DIGIT_SEVEN = (
    (0, 0, 7, 8, 13, 16, 15, 1),
    (0, 0, 7, 7, 4, 11, 12, 0),
    (0, 0, 0, 0, 8, 13, 1, 0),
    (0, 4, 8, 8, 15, 15, 6, 0),
    (0, 2, 11, 15, 15, 4, 0, 0),
    (0, 0, 0, 16, 5, 0, 0, 0),
    (0, 0, 9, 15, 1, 0, 0, 0),
    (0, 0, 13, 5, 0, 0, 0, 0),
)
_DIGIT_SCALE = 4


def _digit_pixels() -> list[int]:
    """The 7 as the digits model reads it: 32x32 greyscale 0..255, row-major."""
    rows = [[round(value * 255 / 16) for value in row for _ in range(_DIGIT_SCALE)] for row in DIGIT_SEVEN]
    return [pixel for row in rows for _ in range(_DIGIT_SCALE) for pixel in row]


V2_INFER_REQUEST: dict[str, Any] = {
    "inputs": [{"name": "image", "shape": [1, 32, 32, 1], "datatype": "FP32", "data": _digit_pixels()}]
}
# The digits model's answer to it, rounded.
V2_INFER_RESPONSE: dict[str, Any] = {
    "model_name": "digits",
    "model_version": "1",
    "outputs": [
        {
            "name": "probabilities",
            "shape": [1, 10],
            "datatype": "FP32",
            "data": [7.3e-8, 5.8e-5, 1.3e-5, 5.2e-5, 1.7e-6, 5.5e-5, 1.2e-6, 0.99955, 7.6e-5, 2e-4],
        }
    ],
}
