"""The Open Inference Protocol's operations on the engine, shared by its REST (`/v2`) and gRPC adapters: the
server's extensions, a model's tensors, and model control. The adapters only parse and encode."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.core.engine import Engine
from service.core.errors import InvalidInputError, ModelLoadError, ModelNotFoundError
from service.core.repository import LoadedModel, ModelState

EXTENSIONS = ("binary_tensor_data",)
# Listed only where model control is on (an admin key is set).
MODEL_REPOSITORY_EXTENSION = "model_repository"
# Little-endian, as the binary extension requires, whatever this machine's byte order.
DATATYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype("?"),
    "UINT8": np.dtype("u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}
# The contract's models take float32 pixels: the one input datatype served.
INPUT_DATATYPE = "FP32"
# A model input is [N, H, W, C]; the bounds let a shape be checked before any arithmetic on it (a product of
# 150,000 dimensions of 10**18 took 7 s of the event loop).
MAX_DIMENSIONS = 8
MAX_DIMENSION = 2**31 - 1


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str
    # -1 for a dimension of any size.
    shape: list[int]


@dataclass(frozen=True)
class ModelTensors:
    """A model version as the protocol describes it: its versions served, inputs and outputs."""

    name: str
    versions: list[str]
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]


def input_values(name: str, datatype: str, shape: list[int], max_values: int) -> int:
    """How many values an input of `shape` holds; InvalidInputError unless FP32 and 1 to `max_values`."""
    if datatype != INPUT_DATATYPE:
        raise InvalidInputError(f"input {name!r} has datatype {datatype!r}; the model takes {INPUT_DATATYPE}")
    if len(shape) > MAX_DIMENSIONS or any(not 0 <= d <= MAX_DIMENSION for d in shape):
        raise InvalidInputError(f"input {name!r}: shape {shape[: MAX_DIMENSIONS + 1]} is not a model input's")
    count = math.prod(shape)
    if not 1 <= count <= max_values:
        raise InvalidInputError(
            f"input {name!r} of shape {shape} holds {count} values; the model takes 1 to {max_values}"
        )
    return count


def datatype_of(array: np.ndarray) -> str:
    for name, dtype in DATATYPES.items():
        if array.dtype.kind == dtype.kind and array.dtype.itemsize == dtype.itemsize:
            return name
    raise ValueError(f"no Open Inference Protocol datatype for {array.dtype}")


def extensions(model_control: bool) -> list[str]:
    return [*EXTENSIONS, MODEL_REPOSITORY_EXTENSION] if model_control else list(EXTENSIONS)


def model_tensors(engine: Engine, model: LoadedModel) -> ModelTensors:
    spec = model.metadata.input
    versions = [m.metadata.version for m in engine.models() if m.metadata.name == model.metadata.name]
    return ModelTensors(
        name=model.metadata.name,
        versions=[str(version) for version in versions],
        inputs=[TensorSpec(spec.name, INPUT_DATATYPE, [-1, spec.height, spec.width, spec.channels])],
        outputs=[
            TensorSpec(out.name, "FP32", [d if isinstance(d, int) else -1 for d in out.shape])
            for out in model.model.session.get_outputs()
        ],
    )


def repository_index(engine: Engine, ready_only: bool) -> list[ModelState]:
    return [state for state in engine.index() if not ready_only or state.state == "READY"]


async def load_model(engine: Engine, name: str) -> list[ModelState]:
    """Load every new or changed version of `name` beside what serves, then swap; its versions' states.
    ModelLoadError when a version is refused, saying what still serves."""
    states = [state for state in await engine.reload([name]) if state.name == name]
    if not states:
        raise ModelNotFoundError(f"no model named {name!r}")
    refused = [state for state in states if state.state == "UNAVAILABLE"]
    if refused:
        reasons = "; ".join(f"version {state.version}: {state.reason}" for state in refused)
        serving = [state.version for state in states if state.state == "READY"]
        still = f"; still serving version {', '.join(serving)}" if serving else ""
        raise ModelLoadError(f"failed to load {name!r}: {reasons}{still}")
    return states


async def unload_model(engine: Engine, name: str) -> None:
    """Stop serving every version of `name` (calls in flight finish) until it is loaded again."""
    engine.find(name)
    await engine.unload(name)
