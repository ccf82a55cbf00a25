"""What the task routes send, `orjson` over a schema's `document`, is byte for byte what the schema itself
would dump: awkward floats, text that JSON must escape, several images."""

from __future__ import annotations

import orjson

from service.api.schemas import ClassifyResponse, DetectResponse, SegmentResponse
from service.core.engine import Answer, ModelId
from service.core.tasks.classify import ClassifiedImage, Prediction
from service.core.tasks.detect import DetectedImage, Detection
from service.core.tasks.segment import SegmentedImage
from service.core.tasks.task import ImageSize

MODEL = ModelId('pets "v2" \u00e9t\u00e9 \U0001f408', 7)
AWKWARD = [0.0, 1 / 3, 0.1 + 0.2, 1e-7, 5e-324, 0.9999999999999999, 1.0]
SIZES = [ImageSize(640, 427), ImageSize(1, 65535)]


def test_a_classify_document_encodes_as_the_schema_dumps() -> None:
    images = [
        ClassifiedImage(size, [Prediction(i, f"cat\\{i}\n\t<\u2028>", p) for i, p in enumerate(AWKWARD)])
        for size in SIZES
    ]
    answer = Answer(MODEL, images)
    assert (
        orjson.dumps(ClassifyResponse.document(answer))
        == ClassifyResponse.of(answer).model_dump_json().encode()
    )


def test_a_detect_document_encodes_as_the_schema_dumps() -> None:
    found = [Detection(i, "star", p, 1 - p, (p, 0.5, 639.75, 123456789.125)) for i, p in enumerate(AWKWARD)]
    answer = Answer(MODEL, [DetectedImage(size, found) for size in SIZES] + [DetectedImage(SIZES[0], [])])
    assert (
        orjson.dumps(DetectResponse.document(answer)) == DetectResponse.of(answer).model_dump_json().encode()
    )


def test_a_segment_document_encodes_as_the_schema_dumps() -> None:
    fractions = {"pet": 1 / 3, "background": 0.1 + 0.2, "border": 1e-7}
    png = b"\x89PNG\r\n\x1a\n\x00\xff"
    answer = Answer(MODEL, [SegmentedImage(size, png, fractions, confidence=0.9) for size in SIZES])
    for style in ("mask", "color", "overlay"):
        document = SegmentResponse.document(answer, style)
        assert orjson.dumps(document) == SegmentResponse.of(answer, style).model_dump_json().encode()
