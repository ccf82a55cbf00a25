"""The one contract between training and serving: `vision.*` metadata inside model.onnx (DESIGN.md)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from service.api.terms import MODEL_NAME_PATTERN, InputSpec, ResizeMode, Task
from service.core.reference import Reference

SCHEMA_VERSION = "1"
KEY_PREFIX = "vision."

TASKS: tuple[Task, ...] = ("classify", "detect", "segment")

OUTPUT_ROLES: dict[str, tuple[str, ...]] = {
    "classify": ("probabilities",),
    "detect": ("boxes", "iou", "class_probabilities"),
    "segment": ("probabilities",),
}
# Roles a model may add to its task's: a classifier's class activation maps [N, h, w, classes], for /explain.
OPTIONAL_OUTPUT_ROLES: dict[str, tuple[str, ...]] = {"classify": ("heatmap",), "detect": (), "segment": ()}
TRIMAP_LABELS = ("pet", "background", "border")
# A trimap pixel holds its label's position plus one (Oxford-IIIT Pet): 1 pet, 2 background, 3 border.
TRIMAP_VALUES = {label: value for value, label in enumerate(TRIMAP_LABELS, start=1)}

# Keys whose values are JSON documents; the rest are plain strings.
JSON_KEYS = ("labels", "input", "outputs", "metrics", "trained", "reference")
OPTIONAL_KEYS = ("metrics", "trained", "reference")
REQUIRED_KEYS = ("schema", "task", "name", "version", "labels", "input", "resize", "outputs")

Dim = int | str | None
Shape = Sequence[Dim]


class ContractError(ValueError):
    """A model file breaks the contract; `key` names the offending metadata key or tensor."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key
        self.message = message


class ModelMetadata(BaseModel):
    """Everything the service needs to use a model, as read from its `vision.*` metadata."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal["1"]
    task: Task
    name: str = Field(pattern=MODEL_NAME_PATTERN)
    version: int = Field(ge=1)
    labels: tuple[str, ...] = Field(min_length=1)
    input: InputSpec
    resize: ResizeMode
    outputs: dict[str, str]
    metrics: dict[str, Any] = Field(default_factory=dict)
    trained: dict[str, Any] = Field(default_factory=dict)
    reference: Reference | None = None

    @field_validator("labels")
    @classmethod
    def _labels_fit_task(cls, labels: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        if len(set(labels)) != len(labels):
            raise ValueError("labels must be unique")
        if info.data.get("task") == "segment" and labels != TRIMAP_LABELS:
            raise ValueError(f"labels of a segment model must be {list(TRIMAP_LABELS)}")
        return labels

    @field_validator("outputs")
    @classmethod
    def _roles_match_task(cls, outputs: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        task = info.data.get("task")
        if task is None:
            return outputs
        required, optional = set(OUTPUT_ROLES[task]), set(OPTIONAL_OUTPUT_ROLES[task])
        if not required <= set(outputs) <= required | optional:
            may = f", and may map {sorted(optional)}" if optional else ""
            raise ValueError(f"outputs must map the roles {sorted(required)} of {task!r}{may}, no others")
        return outputs

    @field_validator("reference")
    @classmethod
    def _reference_fits_task(cls, reference: Reference | None, info: ValidationInfo) -> Reference | None:
        task, labels = info.data.get("task"), info.data.get("labels")
        if reference is not None and task is not None and labels is not None:
            reference.check_fits(task, labels)
        return reference


_FIELD_FOR_KEY = {"schema": "schema_version"}
_KEY_FOR_FIELD = {field: key for key, field in _FIELD_FOR_KEY.items()}


def parse_metadata(props: Mapping[str, str]) -> ModelMetadata:
    """Read and validate the `vision.*` entries of an ONNX file's metadata_props."""
    raw: dict[str, Any] = {}
    for key in REQUIRED_KEYS:
        if KEY_PREFIX + key not in props:
            raise ContractError(KEY_PREFIX + key, "missing")
    for key in (*REQUIRED_KEYS, *OPTIONAL_KEYS):
        value = props.get(KEY_PREFIX + key)
        if value is None:
            continue
        if key in JSON_KEYS:
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ContractError(KEY_PREFIX + key, f"not valid JSON ({exc.msg})") from None
        raw[_FIELD_FOR_KEY.get(key, key)] = value
    try:
        return ModelMetadata.model_validate(raw)
    except ValidationError as exc:
        raise _contract_error_from(exc) from None


def _contract_error_from(exc: ValidationError) -> ContractError:
    first = exc.errors()[0]
    location = [str(part) for part in first["loc"]]
    key = KEY_PREFIX + (_KEY_FOR_FIELD.get(location[0], location[0]) if location else "?")
    where = ".".join(location[1:])
    return ContractError(key, f"{where + ': ' if where else ''}{first['msg']}")


def to_metadata_props(metadata: ModelMetadata) -> dict[str, str]:
    """The metadata_props an exporter writes: string keys, JSON values."""
    dumped = metadata.model_dump(mode="json")
    props: dict[str, str] = {}
    for field, value in dumped.items():
        key = _KEY_FOR_FIELD.get(field, field)
        if value is None:
            continue
        props[KEY_PREFIX + key] = json.dumps(value) if key in JSON_KEYS else str(value)
    return props


def check_tensor_shapes(
    metadata: ModelMetadata, inputs: Mapping[str, Shape], outputs: Mapping[str, Shape]
) -> None:
    """Refuse a model whose real tensors disagree with what its metadata claims."""
    spec = metadata.input
    if spec.name not in inputs:
        raise ContractError("vision.input", f"no input tensor named {spec.name!r} (has {sorted(inputs)})")
    _expect_shape("vision.input", inputs[spec.name], (None, spec.height, spec.width, spec.channels))
    for role, tensor in metadata.outputs.items():
        if tensor not in outputs:
            raise ContractError("vision.outputs", f"{role}: no output tensor named {tensor!r}")
    _check_output_shapes(metadata, {role: outputs[name] for role, name in metadata.outputs.items()})


def _check_output_shapes(metadata: ModelMetadata, shapes: Mapping[str, Shape]) -> None:
    classes = len(metadata.labels)
    if metadata.task == "classify":
        _expect_shape("vision.outputs", shapes["probabilities"], (None, classes), "probabilities")
        if "heatmap" in shapes:
            _expect_shape("vision.outputs", shapes["heatmap"], (None, None, None, classes), "heatmap")
    elif metadata.task == "detect":
        _expect_shape("vision.outputs", shapes["boxes"], (None, None, 4), "boxes")
        _expect_shape("vision.outputs", shapes["iou"], (None, None), "iou")
        _expect_shape(
            "vision.outputs", shapes["class_probabilities"], (None, None, classes), "class_probabilities"
        )
        candidates = {_fixed(shapes[role][1]) for role in ("boxes", "iou", "class_probabilities")} - {None}
        if len(candidates) > 1:
            raise ContractError(
                "vision.outputs", f"boxes, iou and class_probabilities disagree on K: {candidates}"
            )
    else:
        _expect_shape("vision.outputs", shapes["probabilities"], (None, None, None, len(TRIMAP_LABELS)))


def check_class_count(classes: int, labels: Sequence[str]) -> None:
    """Refuse outputs whose number of classes disagrees with the model's labels."""
    if classes != len(labels):
        raise ValueError(f"the model gives {classes} classes but has {len(labels)} labels")


def _expect_shape(key: str, actual: Shape, expected: Sequence[int | None], role: str = "") -> None:
    label = f"{role} " if role else ""
    if len(actual) != len(expected):
        raise ContractError(key, f"{label}tensor has rank {len(actual)}, expected {len(expected)}")
    for axis, (got, want) in enumerate(zip(actual, expected, strict=True)):
        fixed = _fixed(got)
        if want is not None and fixed is not None and fixed != want:
            raise ContractError(key, f"{label}tensor dimension {axis} is {fixed}, metadata says {want}")


def _fixed(dim: Dim) -> int | None:
    return dim if isinstance(dim, int) and dim > 0 else None
