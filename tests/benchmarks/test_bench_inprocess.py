"""The in-process limit does the engine's work per image: a segmenter's images are finished as the engine
finishes them (the mask at the image's size and its PNG), which #25's /segment bar counts in the limit."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from benchmarks import images, inprocess
from service.core.imaging import PreparedImage
from service.core.model import Model

MODELS = Path(__file__).resolve().parents[2] / "models"
SEGMENTER = MODELS / "shapes-segmenter" / "1" / "model.onnx"
CLASSIFIER = MODELS / "shapes-classifier" / "1" / "model.onnx"
PHOTO = images.encode_jpeg(Image.fromarray(data.chelsea()))  # 451x300


def test_a_segmenters_image_is_finished_into_a_mask_png_at_its_own_size() -> None:
    model = inprocess.load(SEGMENTER, inprocess.Config(1, 1, 1))
    finish = inprocess.segment_finish(model)
    assert finish is not None
    image = model.prepare(PHOTO, inprocess.LIMITS)
    outputs = model.run(np.stack([image.pixels]))
    finished = finish(inprocess.image_outputs(outputs, 0), image)
    assert Image.open(io.BytesIO(finished.png)).size == (451, 300)  # type: ignore[attr-defined]
    assert inprocess.segment_finish(inprocess.load(CLASSIFIER, inprocess.Config(1, 1, 1))) is None


def test_the_segmenters_limit_finishes_every_image_it_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    engines_finish = inprocess.segment_finish
    finished: list[PreparedImage] = []

    def counting(model: Model) -> object:
        finish = engines_finish(model)
        assert finish is not None

        def count(outputs: dict[str, np.ndarray], image: PreparedImage) -> object:
            finished.append(image)
            return finish(outputs, image)

        return count

    monkeypatch.setattr(inprocess, "segment_finish", counting)
    measured = inprocess.measure(SEGMENTER, [PHOTO], inprocess.Config(1, 1, 2), duration=0.2)
    # However few batches a loaded machine fits in, each image counted was finished, and the warm-up's two.
    assert len(finished) == measured.images + 2
