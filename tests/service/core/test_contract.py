"""The `vision.*` metadata contract: a round trip, and precise refusals."""

from __future__ import annotations

import json
import re

import pytest

from service.api.terms import InputSpec
from service.core.contract import (
    ContractError,
    ModelMetadata,
    check_tensor_shapes,
    parse_metadata,
    to_metadata_props,
)


def metadata(**changes: object) -> ModelMetadata:
    fields = {
        "schema_version": "1",
        "task": "detect",
        "name": "shapes-detector",
        "version": 1,
        "labels": ("circle", "square"),
        "input": InputSpec(name="image", height=64, width=64, channels=3),
        "resize": "letterbox",
        "outputs": {"boxes": "b", "iou": "i", "class_probabilities": "c"},
    }
    return ModelMetadata(**{**fields, **changes})


def test_round_trip() -> None:
    original = metadata(metrics={"map50": 0.93})
    props = to_metadata_props(original)
    assert props["vision.schema"] == "1"
    assert json.loads(props["vision.labels"]) == ["circle", "square"]
    assert parse_metadata(props) == original


@pytest.mark.parametrize(
    ("change", "key"),
    [
        (lambda p: p.pop("vision.task"), "vision.task"),
        (lambda p: p.update({"vision.labels": "[not json"}), "vision.labels"),
        (lambda p: p.update({"vision.resize": "crop"}), "vision.resize"),
        (lambda p: p.update({"vision.outputs": '{"boxes": "b"}'}), "vision.outputs"),
        (lambda p: p.update({"vision.schema": "2"}), "vision.schema"),
        (
            lambda p: p.update(
                {"vision.input": '{"name": "image", "height": 64, "width": 64, "channels": 4}'}
            ),
            "vision.input",
        ),
    ],
)
def test_refusals_name_the_key(change, key: str) -> None:
    props = to_metadata_props(metadata())
    change(props)
    with pytest.raises(ContractError) as caught:
        parse_metadata(props)
    assert caught.value.key == key


def test_tensor_shapes_must_agree() -> None:
    meta = metadata()
    inputs = {"image": ["N", 64, 64, 3]}
    good = {"b": ["N", 12, 4], "i": ["N", 12], "c": ["N", 12, 2]}
    check_tensor_shapes(meta, inputs, good)
    with pytest.raises(ContractError, match="disagree on K"):
        check_tensor_shapes(meta, inputs, {**good, "i": ["N", 10]})
    with pytest.raises(ContractError, match="dimension 2"):
        check_tensor_shapes(meta, inputs, {**good, "c": ["N", 12, 3]})
    with pytest.raises(ContractError, match="dimension 1 is 32"):
        check_tensor_shapes(meta, {"image": ["N", 32, 64, 3]}, good)


def test_segment_labels_are_the_trimap() -> None:
    with pytest.raises(ValueError, match="pet"):
        metadata(task="segment", labels=("a", "b", "c"), outputs={"probabilities": "p"})


def test_a_classifier_may_add_a_heatmap_and_nothing_else() -> None:
    outputs = {"probabilities": "p", "heatmap": "h"}
    meta = metadata(task="classify", outputs=outputs)
    inputs = {"image": ["N", 64, 64, 3]}
    check_tensor_shapes(meta, inputs, {"p": ["N", 2], "h": ["N", 8, 8, 2]})
    with pytest.raises(ContractError, match="heatmap tensor dimension 3 is 3"):
        check_tensor_shapes(meta, inputs, {"p": ["N", 2], "h": ["N", 8, 8, 3]})
    with pytest.raises(ContractError, match="heatmap tensor has rank 3"):
        check_tensor_shapes(meta, inputs, {"p": ["N", 2], "h": ["N", 64, 2]})
    with pytest.raises(ValueError, match=re.escape("may map ['heatmap'], no others")):
        metadata(task="classify", outputs={**outputs, "boxes": "b"})
    roles = "must map the roles ['boxes', 'class_probabilities', 'iou'] of 'detect', no others"
    with pytest.raises(ValueError, match=re.escape(roles)):
        metadata(outputs={"boxes": "b", "class_probabilities": "c", "heatmap": "h"})
