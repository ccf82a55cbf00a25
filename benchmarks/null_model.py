"""The null model: the bundled classifier's contract over a graph that costs nothing (mean pixel -> softmax).

Served, it measures the front end's own ceiling: HTTP, intake, decode, resize, batching and the answer, with
inference taken out. It is what a GPU would be fed at, and it is held against decode and resize alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from training.signing import signed_bytes

NAME = "null-classifier"


def build(folder: Path, classifier: Path) -> Path:
    """A model repository under `folder` holding NAME, made from `classifier`'s input, labels and metadata."""
    path = folder / NAME / "1" / "model.onnx"
    source = onnx.load(str(classifier), load_external_data=False)
    props = {prop.key: prop.value for prop in source.metadata_props}
    labels = json.loads(props["vision.labels"])
    output = json.loads(props["vision.outputs"])["probabilities"]
    image = source.graph.input[0]
    channels = image.type.tensor_type.shape.dim[3].dim_value
    # Fixed weights over the mean pixel (0-255): the answer is a real, unsaturated softmax over the labels.
    weights = np.linspace(-1, 1, channels * len(labels), dtype=np.float32).reshape(channels, -1) / 255
    nodes = [
        helper.make_node("ReduceMean", [image.name], ["mean"], axes=[1, 2], keepdims=0),
        helper.make_node("Constant", [], ["weights"], value=numpy_helper.from_array(weights, "weights")),
        helper.make_node("MatMul", ["mean", "weights"], ["logits"]),
        helper.make_node("Softmax", ["logits"], [output], axis=-1),
    ]
    probabilities = helper.make_tensor_value_info(output, TensorProto.FLOAT, ["N", len(labels)])
    graph = helper.make_graph(nodes, NAME, [image], [probabilities])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = source.ir_version
    trained = {"architecture": "null: mean pixel -> softmax", "built_from": props["vision.name"]}
    kept = {key: value for key, value in props.items() if key not in ("vision.sha256", "vision.metrics")}
    renamed = {
        "vision.name": NAME,
        "vision.version": "1",
        "vision.trained": json.dumps(trained),
        # The one output it has: a classifier's heatmap (for /explain) is not part of the front end's work.
        "vision.outputs": json.dumps({"probabilities": output}),
    }
    helper.set_model_props(model, kept | renamed)
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(signed_bytes(model))
    return folder
