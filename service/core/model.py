"""One servable model file: its validated contract, its session, and how an upload becomes its input."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from service.core import integrity
from service.core.contract import ModelMetadata, check_tensor_shapes, parse_metadata
from service.core.decoding import DecodeJob
from service.core.imaging import ImageLimits, PreparedImage
from service.core.runtime import ExecutionPlan, open_session, run_batch, session_device, tensor_shapes

logger = logging.getLogger("vision.model")


@dataclass
class Model:
    """A model file opened in ONNX Runtime whose metadata and tensors agree with the contract."""

    metadata: ModelMetadata
    path: Path
    session: ort.InferenceSession
    device: str
    sha256: str | None = None  # the verified digest of the file, when it carries one

    @property
    def key(self) -> str:
        return f"{self.metadata.name}:{self.metadata.version}"

    def prepare(self, data: bytes, limits: ImageLimits, preview_side: int | None = None) -> PreparedImage:
        """Decode one upload within `limits` into this model's input, in this thread."""
        return self.decode_job(data, limits, preview_side).run()

    def decode_job(self, data: bytes, limits: ImageLimits, preview_side: int | None = None) -> DecodeJob:
        """What a decode worker needs to turn one upload into this model's input (and a bounded preview)."""
        spec = self.metadata.input
        return DecodeJob(
            data, spec.width, spec.height, spec.channels, self.metadata.resize, limits, preview_side
        )

    def run(self, batch: np.ndarray) -> dict[str, np.ndarray]:
        """One `session.run` over a stacked NHWC batch; outputs keyed by contract role."""
        return run_batch(self.session, self.metadata.input.name, self.metadata.outputs, batch)

    def warm_up(self) -> None:
        """One run on a blank image, so the first request does not pay for lazy allocation."""
        spec = self.metadata.input
        self.run(np.zeros((1, spec.height, spec.width, spec.channels), dtype=np.float32))


def open_model(path: Path, plan: ExecutionPlan) -> Model:
    """Open `path` and validate its contract and digest; raises ContractError naming the key at fault."""
    # Read once: the bytes checked are the bytes the session runs.
    data = path.read_bytes()
    session = open_session(data, plan, name=str(path))
    props = session.get_modelmeta().custom_metadata_map
    metadata = parse_metadata(props)
    declared = props.get(integrity.DIGEST_KEY)
    if not integrity.check(data, declared):
        logger.warning("%s has no %s: a change after export cannot be detected", path, integrity.DIGEST_KEY)
    check_tensor_shapes(metadata, tensor_shapes(session.get_inputs()), tensor_shapes(session.get_outputs()))
    return Model(metadata, path, session, session_device(session), declared)
