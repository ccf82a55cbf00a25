"""Sign model files: write `vision.sha256`, the digest the service checks on every load, and on request the
drift reference `vision.reference` first."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import onnx

from service.core import integrity
from service.core.contract import KEY_PREFIX, check_tensor_shapes, parse_metadata
from service.core.model import Model
from service.core.reference import Reference
from service.core.runtime import open_session, plan_execution, tensor_shapes
from service.cpus import usable_cores
from training.reference import measure_reference


def signed_bytes(proto: onnx.ModelProto) -> bytes:
    """`proto` serialised with its `vision.sha256` set to the digest of exactly these bytes."""
    kept = [(p.key, p.value) for p in proto.metadata_props if p.key != integrity.DIGEST_KEY]
    del proto.metadata_props[:]
    for key, value in [*kept, (integrity.DIGEST_KEY, integrity.PLACEHOLDER)]:
        proto.metadata_props.add(key=key, value=value)
    return integrity.sign(proto.SerializeToString())


def sign_file(path: Path) -> str:
    """Add or renew the digest of an exported model file in place; returns the digest."""
    data = signed_bytes(onnx.load(str(path)))
    path.write_bytes(data)
    return next(p.value for p in onnx.load_from_string(data).metadata_props if p.key == integrity.DIGEST_KEY)


def add_reference(path: Path, uploads: Sequence[Path | bytes], source: str) -> Reference:
    """Measure the model in `path` on `uploads`, write the result as its `vision.reference` and sign the
    file again; returns the reference. The file is checked against the contract first, not its digest:
    signing anew is what follows an edit."""
    proto = onnx.load(str(path))
    metadata = parse_metadata({p.key: p.value for p in proto.metadata_props})
    plan = plan_execution("cpu", cores=usable_cores(), threads=0, workers=1)
    session = open_session(proto.SerializeToString(), plan, name=str(path))
    check_tensor_shapes(metadata, tensor_shapes(session.get_inputs()), tensor_shapes(session.get_outputs()))
    reference = measure_reference(Model(metadata, path, session, "cpu"), uploads, source)
    key = KEY_PREFIX + "reference"
    kept = [(p.key, p.value) for p in proto.metadata_props if p.key != key]
    del proto.metadata_props[:]
    for name, value in [*kept, (key, reference.model_dump_json())]:
        proto.metadata_props.add(key=name, value=value)
    parse_metadata({p.key: p.value for p in proto.metadata_props})
    path.write_bytes(signed_bytes(proto))
    return reference
