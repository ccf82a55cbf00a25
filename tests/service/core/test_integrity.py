"""`vision.sha256`: a signed file loads, a file changed after export is refused, an unsigned one warns."""

from __future__ import annotations

import logging
from pathlib import Path

import onnx
import onnx_models
import pytest
from onnx import numpy_helper

from service.core import integrity
from service.core.contract import ContractError
from service.core.model import open_model
from service.core.runtime import plan_execution
from training.signing import signed_bytes

PLAN = plan_execution("cpu", cores=1, threads=1, workers=1)


def test_sign_then_check_round_trips() -> None:
    data = b"head " + integrity.PLACEHOLDER.encode() + b" tail"
    signed = integrity.sign(data)
    declared = signed[5:69].decode()
    assert declared != integrity.PLACEHOLDER
    assert integrity.check(signed, declared)
    assert not integrity.check(signed, None)
    with pytest.raises(ContractError, match="was changed after export"):
        integrity.check(signed.replace(b"tail", b"tale"), declared)
    with pytest.raises(ContractError, match="exactly once"):
        integrity.sign(data + integrity.PLACEHOLDER.encode())


def test_a_signed_model_loads_with_its_digest(tmp_path: Path) -> None:
    model = open_model(onnx_models.colour_classifier(tmp_path), PLAN)
    assert model.sha256 is not None
    assert len(model.sha256) == 64


def overwrite_weights(path: Path) -> None:
    """Change the classifier's weights in place, as a bad copy or a disk error would, keeping its metadata."""
    proto = onnx.load(path)
    for node in proto.graph.node:
        for attribute in node.attribute:
            if attribute.t.dims:
                doubled = numpy_helper.to_array(attribute.t) * 2
                attribute.t.CopyFrom(numpy_helper.from_array(doubled, attribute.t.name))
    path.write_bytes(proto.SerializeToString())


def test_weights_changed_after_export_are_refused(tmp_path: Path) -> None:
    path = onnx_models.colour_classifier(tmp_path)
    before = path.read_bytes()
    overwrite_weights(path)
    assert path.read_bytes() != before
    with pytest.raises(ContractError) as refused:
        open_model(path, PLAN)
    assert refused.value.key == "vision.sha256"


def test_an_unsigned_model_loads_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = onnx_models.colour_classifier(tmp_path)
    proto = onnx.load(path)
    kept = [(p.key, p.value) for p in proto.metadata_props if p.key != integrity.DIGEST_KEY]
    del proto.metadata_props[:]
    for key, value in kept:
        proto.metadata_props.add(key=key, value=value)
    path.write_bytes(proto.SerializeToString())
    with caplog.at_level(logging.WARNING, logger="vision.model"):
        model = open_model(path, PLAN)
    assert model.sha256 is None
    assert "has no vision.sha256" in caplog.text


def test_re_signing_an_edited_file_makes_it_load_again(tmp_path: Path) -> None:
    path = onnx_models.colour_classifier(tmp_path)
    overwrite_weights(path)
    path.write_bytes(signed_bytes(onnx.load(path)))
    assert open_model(path, PLAN).sha256 is not None
