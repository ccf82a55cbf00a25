"""Sign model files: write `vision.sha256`, the digest the service checks on every load."""

from __future__ import annotations

from pathlib import Path

import onnx

from service.core import integrity


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
