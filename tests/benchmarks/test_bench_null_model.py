"""The null model carries the bundled classifier's contract, is served like any model, and answers a real,
unsaturated softmax whatever the image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

from benchmarks import images, inprocess, null_model
from service.core.model import open_model
from service.core.runtime import CPU, ExecutionPlan

BUNDLED = Path(__file__).resolve().parents[2] / "models" / "shapes-classifier" / "1" / "model.onnx"


def test_the_null_model_keeps_the_classifiers_contract_and_answers(tmp_path: Path) -> None:
    repository = null_model.build(tmp_path, BUNDLED)
    path = repository / null_model.NAME / "1" / "model.onnx"
    ours, theirs = inprocess.read_metadata(path), inprocess.read_metadata(BUNDLED)
    assert (ours.name, ours.task, ours.labels, ours.input, ours.resize) == (
        null_model.NAME,
        "classify",
        theirs.labels,
        theirs.input,
        theirs.resize,
    )
    assert ours.metrics == {}
    model = open_model(path, ExecutionPlan((CPU,), 1, 1))  # checks the signature, as the service does
    photo = inprocess.prepare(model, images.encode_jpeg(Image.fromarray(data.chelsea())))
    probabilities = model.run(np.stack([photo, np.zeros_like(photo)]))["probabilities"]
    assert probabilities.shape == (2, len(theirs.labels))
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert probabilities.max() < 0.5
