"""One servable model file: its validated contract, its session, and how an upload becomes its input."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from service.core.contract import ModelMetadata, check_tensor_shapes, parse_metadata
from service.core.imaging import ImageLimits, PreparedImage, prepare_image
from service.core.runtime import ExecutionPlan, open_session, run_batch, session_device, tensor_shapes


@dataclass
class Model:
    """A model file opened in ONNX Runtime whose metadata and tensors agree with the contract."""

    metadata: ModelMetadata
    path: Path
    session: ort.InferenceSession
    device: str

    @property
    def key(self) -> str:
        return f"{self.metadata.name}:{self.metadata.version}"

    def prepare(self, data: bytes, limits: ImageLimits, keep_original: bool = False) -> PreparedImage:
        """Decode one upload within `limits` into this model's input: size, channels and resize mode."""
        spec = self.metadata.input
        return prepare_image(
            data,
            width=spec.width,
            height=spec.height,
            channels=spec.channels,
            resize=self.metadata.resize,
            limits=limits,
            keep_original=keep_original,
        )

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """One `session.run` over a stacked NHWC batch; outputs keyed by contract role."""
        return run_batch(self.session, self.metadata.input.name, self.metadata.outputs, batch)

    def warm_up(self) -> None:
        """One run on a blank image, so the first request does not pay for lazy allocation."""
        spec = self.metadata.input
        self.run(np.zeros((1, spec.height, spec.width, spec.channels), dtype=np.float32))


def open_model(path: Path, plan: ExecutionPlan) -> Model:
    """Open `path` and validate its contract; raises ContractError naming the key at fault."""
    session = open_session(path, plan)
    metadata = parse_metadata(session.get_modelmeta().custom_metadata_map)
    check_tensor_shapes(metadata, tensor_shapes(session.get_inputs()), tensor_shapes(session.get_outputs()))
    return Model(metadata, path, session, session_device(session))
