"""Tiny contract-following ONNX models built with the onnx helper API, whose answers are known exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from service.api.terms import InputSpec
from service.core.contract import ModelMetadata, to_metadata_props
from service.core.reference import Histogram, Mix, Reference
from training.signing import signed_bytes

OPSET = 17
IR_VERSION = 9

# The fixed detector's candidates: box (normalised x_min, y_min, x_max, y_max of the model input), IoU
# estimate and class probabilities over ("circle", "square"). B overlaps A (IoU 0.68) with the same class, so
# NMS removes it;
# D's score (0.5 x 0.2) is under the default threshold.
DETECTOR_LABELS = ("circle", "square")
DETECTOR_BOXES = np.array(
    [[0.25, 0.25, 0.75, 0.75], [0.3, 0.3, 0.8, 0.8], [0.0, 0.0, 0.5, 0.25], [0.5, 0.5, 1.0, 1.0]],
    dtype=np.float32,
)
DETECTOR_IOU = np.array([0.9, 0.8, 0.5, 0.2], dtype=np.float32)
DETECTOR_CLASS_PROBABILITIES = np.array([[0.9, 0.1], [0.8, 0.2], [0.2, 0.8], [0.5, 0.5]], dtype=np.float32)

# The segmenter's trimap class is the one whose centre is nearest the pixel's grey value.
SEGMENTER_CENTRES = {"pet": 255.0, "background": 0.0, "border": 128.0}


def _const(name: str, value: np.ndarray | list[float] | list[int]) -> onnx.NodeProto:
    array = np.asarray(value)
    array = array.astype(np.int64) if array.dtype.kind in "iu" else array.astype(np.float32)
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(array, name))


def _image_input(spec: InputSpec) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(
        spec.name, TensorProto.FLOAT, ["N", spec.height, spec.width, spec.channels]
    )


def _output(name: str, shape: list[int | str]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _save(
    root: Path,
    metadata: ModelMetadata,
    nodes: list[onnx.NodeProto],
    outputs: list[onnx.ValueInfoProto],
) -> Path:
    graph = helper.make_graph(nodes, metadata.name, [_image_input(metadata.input)], outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = IR_VERSION
    helper.set_model_props(model, to_metadata_props(metadata))
    onnx.checker.check_model(model)
    path = root / metadata.name / str(metadata.version) / "model.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(signed_bytes(model))
    return path


def _metadata(
    task: str,
    name: str,
    version: int,
    labels: tuple[str, ...],
    spec: InputSpec,
    resize: str,
    outputs: dict[str, str],
) -> ModelMetadata:
    return ModelMetadata(
        schema_version="1",
        task=task,
        name=name,
        version=version,
        labels=labels,
        input=spec,
        resize=resize,
        outputs=outputs,
        metrics={"accuracy": 1.0, "dataset": "hand-built"},
        trained={"architecture": "onnx helper graph"},
    )


# What the colour classifier saw of its "held-out" images: pure colours, answered with near certainty. A grey
# image (a third each) is under its unfamiliar line.
COLOUR_REFERENCE = Reference(
    images=90,
    source="pure red, green and blue squares",
    low_confidence=0.9,
    signals={
        "confidence": Histogram(cuts=(0.9, 0.99), counts=(0, 10, 80)),
        "aspect_ratio": Histogram(cuts=(1.0, 1.0001), counts=(0, 90, 0)),
        "class": Mix(counts=(30, 30, 30)),
    },
)


def colour_classifier(root: Path, name: str = "colours", version: int = 1) -> Path:
    """Top class is the image's dominant channel: red, green or blue (8x8 RGB, stretch)."""
    spec = InputSpec(name="image", height=8, width=8, channels=3)
    meta = _metadata(
        "classify", name, version, ("red", "green", "blue"), spec, "stretch", {"probabilities": "probs"}
    )
    nodes = [
        helper.make_node("ReduceMean", ["image"], ["mean"], axes=[1, 2], keepdims=0),
        _const("scale", [0.1]),
        helper.make_node("Mul", ["mean", "scale"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
    ]
    return _save(root, meta, nodes, [_output("probs", ["N", 3])])


def explaining_colour_classifier(
    root: Path, name: str = "colours-explained", version: int = 1, resize: str = "stretch"
) -> Path:
    """The colour classifier with a `heatmap`: each pixel's channel values / 100 (8x8x3 maps), whose mean is
    its logits, as a global-average-pooling head's map is; so a class's hottest cells are its reddest (or
    greenest, bluest) pixels."""
    spec = InputSpec(name="image", height=8, width=8, channels=3)
    outputs = {"probabilities": "probs", "heatmap": "maps"}
    meta = _metadata("classify", name, version, ("red", "green", "blue"), spec, resize, outputs)
    nodes = [
        _const("scale", [0.01]),
        helper.make_node("Mul", ["image", "scale"], ["maps"]),
        helper.make_node("ReduceMean", ["maps"], ["logits"], axes=[1, 2], keepdims=0),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
    ]
    return _save(root, meta, nodes, [_output("probs", ["N", 3]), _output("maps", ["N", 8, 8, 3])])


def brightness_classifier(root: Path, name: str = "brightness", version: int = 1) -> Path:
    """Greyscale input (8x8x1, letterbox): `bright` when the mean grey level is over 128, else `dark`."""
    spec = InputSpec(name="pixels", height=8, width=8, channels=1)
    meta = _metadata(
        "classify", name, version, ("dark", "bright"), spec, "letterbox", {"probabilities": "probs"}
    )
    nodes = [
        helper.make_node("ReduceMean", ["pixels"], ["mean"], axes=[1, 2], keepdims=0),
        _const("centre", [128.0]),
        helper.make_node("Sub", ["mean", "centre"], ["centred"]),
        _const("direction", [-0.1, 0.1]),
        helper.make_node("Mul", ["centred", "direction"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
    ]
    return _save(root, meta, nodes, [_output("probs", ["N", 2])])


def fixed_detector(root: Path, name: str = "boxes", version: int = 1, resize: str = "letterbox") -> Path:
    """Whatever the image, the same four candidates (DETECTOR_*), on a 32x32 RGB input."""
    spec = InputSpec(name="image", height=32, width=32, channels=3)
    outputs = {"boxes": "boxes", "iou": "iou", "class_probabilities": "class_probabilities"}
    meta = _metadata("detect", name, version, DETECTOR_LABELS, spec, resize, outputs)
    k = len(DETECTOR_IOU)
    nodes = [
        # A zero per batch row, so the constant outputs take the batch dimension of the input.
        helper.make_node("ReduceMean", ["image"], ["mean"], axes=[1, 2, 3], keepdims=0),
        _const("zero", [0.0]),
        helper.make_node("Mul", ["mean", "zero"], ["zeros"]),
        _const("shape3", [-1, 1, 1]),
        _const("shape2", [-1, 1]),
        helper.make_node("Reshape", ["zeros", "shape3"], ["zeros3"]),
        helper.make_node("Reshape", ["zeros", "shape2"], ["zeros2"]),
        _const("box_values", DETECTOR_BOXES[None]),
        _const("iou_values", DETECTOR_IOU[None]),
        _const("class_values", DETECTOR_CLASS_PROBABILITIES[None]),
        helper.make_node("Add", ["zeros3", "box_values"], ["boxes"]),
        helper.make_node("Add", ["zeros2", "iou_values"], ["iou"]),
        helper.make_node("Add", ["zeros3", "class_values"], ["class_probabilities"]),
    ]
    return _save(
        root,
        meta,
        nodes,
        [
            _output("boxes", ["N", k, 4]),
            _output("iou", ["N", k]),
            _output("class_probabilities", ["N", k, 2]),
        ],
    )


def threshold_segmenter(root: Path, name: str = "threshold", version: int = 1) -> Path:
    """Per pixel of a 16x16 stretch input: white -> pet, black -> background, mid-grey -> border."""
    spec = InputSpec(name="image", height=16, width=16, channels=3)
    meta = _metadata(
        "segment", name, version, ("pet", "background", "border"), spec, "stretch", {"probabilities": "probs"}
    )
    nodes = [
        helper.make_node("ReduceMean", ["image"], ["grey"], axes=[3], keepdims=1),
        _const("centres", list(SEGMENTER_CENTRES.values())),
        helper.make_node("Sub", ["grey", "centres"], ["offset"]),
        helper.make_node("Abs", ["offset"], ["distance"]),
        _const("sharpness", [-0.1]),
        helper.make_node("Mul", ["distance", "sharpness"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
    ]
    return _save(root, meta, nodes, [_output("probs", ["N", 16, 16, 3])])


def misnamed_model(root: Path) -> Path:
    """A valid classifier whose `vision.name` disagrees with its directory."""
    path = colour_classifier(root, name="misnamed")
    model = onnx.load(path)
    helper.set_model_props(model, {**_props(model), "vision.name": "someone-else"})
    path.write_bytes(signed_bytes(model))
    return path


def misshapen_model(root: Path) -> Path:
    """Metadata claims a 16x16 input; the real tensor is 8x8."""
    path = colour_classifier(root, name="misshapen")
    model = onnx.load(path)
    props = _props(model)
    claimed = {
        "name": "image",
        "height": 16,
        "width": 16,
        "channels": 3,
        "layout": "NHWC",
        "dtype": "float32",
    }
    helper.set_model_props(model, {**props, "vision.input": json.dumps(claimed)})
    path.write_bytes(signed_bytes(model))
    return path


def add_reference(path: Path, reference: Reference) -> Path:
    """Give a saved test model a drift reference (`vision.reference`), signed again."""
    model = onnx.load(str(path))
    props = {**_props(model), "vision.reference": reference.model_dump_json()}
    del model.metadata_props[:]
    helper.set_model_props(model, props)
    path.write_bytes(signed_bytes(model))
    return path


def _props(model: onnx.ModelProto) -> dict[str, str]:
    return {prop.key: prop.value for prop in model.metadata_props}


def slow_classifier(root: Path, name: str = "slow", version: int = 1, iterations: int = 20_000) -> Path:
    """The colour classifier's answer after `iterations` rounds of a 128x128 matrix product whose result is
    multiplied by zero: a model whose run takes seconds, for requests still running when something ends."""
    spec = InputSpec(name="image", height=8, width=8, channels=3)
    meta = _metadata(
        "classify", name, version, ("red", "green", "blue"), spec, "stretch", {"probabilities": "probs"}
    )
    body = helper.make_graph(
        [
            helper.make_node("MatMul", ["state_in", "state_in"], ["product"]),
            helper.make_node("Tanh", ["product"], ["state_out"]),
            helper.make_node("Identity", ["condition_in"], ["condition_out"]),
        ],
        "rounds",
        [
            helper.make_tensor_value_info("round", TensorProto.INT64, []),
            helper.make_tensor_value_info("condition_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("state_in", TensorProto.FLOAT, [128, 128]),
        ],
        [
            helper.make_tensor_value_info("condition_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("state_out", TensorProto.FLOAT, [128, 128]),
        ],
    )
    nodes = [
        _const("rounds", np.array(iterations, dtype=np.int64)),
        helper.make_node("Constant", [], ["always"], value=numpy_helper.from_array(np.array(True), "always")),
        # The loop starts from the input, so no optimiser can fold it into a constant at load.
        helper.make_node("ReduceMean", ["image"], ["overall"], keepdims=0),
        _const("zero", [0.0]),
        helper.make_node("Mul", ["overall", "zero"], ["no_shift"]),
        _const("seed", np.full((128, 128), 0.01)),
        helper.make_node("Add", ["seed", "no_shift"], ["start"]),
        helper.make_node("Loop", ["rounds", "always", "start"], ["spun"], body=body),
        helper.make_node("ReduceSum", ["spun"], ["spun_sum"], keepdims=0),
        helper.make_node("Mul", ["spun_sum", "zero"], ["nothing"]),
        helper.make_node("ReduceMean", ["image"], ["mean"], axes=[1, 2], keepdims=0),
        _const("scale", [0.1]),
        helper.make_node("Mul", ["mean", "scale"], ["scaled"]),
        helper.make_node("Add", ["scaled", "nothing"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
    ]
    return _save(root, meta, nodes, [_output("probs", ["N", 3])])
