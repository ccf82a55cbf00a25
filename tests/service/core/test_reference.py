"""The drift reference a model file carries: its bins, the PSI, how it is built, what the contract refuses."""

from __future__ import annotations

import json

import numpy as np
import onnx_models
import pytest
from conftest import encode, solid
from PIL import Image

from service.api.terms import InputSpec
from service.core.contract import ContractError, ModelMetadata, parse_metadata, to_metadata_props
from service.core.imaging import ImageLimits, prepare_image
from service.core.reference import (
    Mix,
    ReferenceBuilder,
    histogram,
    input_numbers,
    psi,
)
from service.core.tasks.task import Observation

LIMITS = ImageLimits(max_bytes=1 << 20, max_pixels=1 << 20)


def classifier(**changes: object) -> ModelMetadata:
    fields = {
        "schema_version": "1",
        "task": "classify",
        "name": "colours",
        "version": 1,
        "labels": ("red", "green", "blue"),
        "input": InputSpec(name="image", height=8, width=8, channels=3),
        "resize": "stretch",
        "outputs": {"probabilities": "probs"},
    }
    return ModelMetadata(**{**fields, **changes})


REFERENCE = onnx_models.COLOUR_REFERENCE


def test_values_beyond_the_measured_range_get_bins_of_their_own() -> None:
    measured = histogram(np.linspace(10, 20, 101))
    assert measured.cuts[0] == 10
    assert 20 < measured.cuts[-1] < 20.000001
    assert measured.counts[0] == 0
    assert measured.counts[-1] == 0
    assert sum(measured.counts) == 101
    assert measured.bin_of(9.99) == 0
    assert measured.bin_of(20.5) == len(measured.cuts)


def test_a_constant_signal_still_tells_other_values_apart() -> None:
    # Every training image of one size: a photo of another size, larger or smaller, is not in its bin.
    constant = histogram([0.0169] * 50)
    assert constant.counts == (0, 50, 0)
    assert {constant.bin_of(0.01), constant.bin_of(0.0169), constant.bin_of(0.3)} == {0, 1, 2}


def test_discrete_values_each_keep_a_bin() -> None:
    boxes = histogram([1] * 40 + [2] * 35 + [3] * 25)
    assert [boxes.counts[boxes.bin_of(count)] for count in (1, 2, 3)] == [40, 35, 25]
    assert boxes.bin_of(4) != boxes.bin_of(3)


def test_psi_is_zero_for_the_same_shares_and_grows_with_the_shift() -> None:
    expected = [10, 20, 30, 40]
    # Only the pseudo-counts that keep an empty bin finite tell twice the images from the same shares.
    assert psi(expected, [20, 40, 60, 80]) < 1e-4
    shifts = [psi(expected, [10 + k, 20, 30, 40 - k]) for k in (0, 10, 20, 30)]
    assert shifts == sorted(shifts)
    assert shifts[-1] > 0.2
    # An empty bin on one side is finite, not infinite.
    assert np.isfinite(psi([0, 100], [100, 0]))


def test_the_builder_bins_what_the_task_observed_and_draws_the_unfamiliar_line() -> None:
    builder = ReferenceBuilder("classify", ("red", "green", "blue"))
    image = prepare_image(
        encode(solid((200, 10, 10), (40, 20)), "PNG"),
        width=8,
        height=8,
        channels=3,
        resize="stretch",
        limits=LIMITS,
    )
    confidences = np.linspace(0.3, 1.0, 200)
    for index, confidence in enumerate(confidences):
        builder.add(image, Observation(float(confidence), {}, {"class": {index % 3: 1.0}}))
    reference = builder.build("two hundred")
    assert reference.images == 200
    assert reference.source == "two hundred"
    assert reference.low_confidence == pytest.approx(np.quantile(confidences, 0.01))
    assert set(reference.signals) == {"confidence", "brightness", "aspect_ratio", "megapixels", "class"}
    assert reference.signals["class"] == Mix(counts=(67.0, 67.0, 66.0))
    assert reference.signals["aspect_ratio"].counts[reference.signals["aspect_ratio"].bin_of(2.0)] == 200
    reference.check_fits("classify", ("red", "green", "blue"))


def test_brightness_is_of_the_picture_not_the_letterbox_padding() -> None:
    wide = prepare_image(
        encode(solid(0, (64, 16), "L"), "PNG"),
        width=16,
        height=16,
        channels=1,
        resize="letterbox",
        limits=LIMITS,
    )
    # Grey 114 pads three quarters of the input; the picture itself is black.
    assert float(wide.pixels.mean()) > 50
    numbers = input_numbers(wide)
    assert numbers["brightness"] == (0.0,)
    assert numbers["aspect_ratio"] == (4.0,)
    assert numbers["megapixels"] == (64 * 16 / 1e6,)


def test_brightness_follows_the_picture() -> None:
    gradient = Image.fromarray(np.tile(np.arange(256, dtype=np.uint8), (64, 1)), "L")
    prepared = prepare_image(
        encode(gradient, "PNG"), width=64, height=64, channels=1, resize="stretch", limits=LIMITS
    )
    assert input_numbers(prepared)["brightness"][0] == pytest.approx(prepared.pixels.mean())


def test_the_reference_travels_in_the_metadata() -> None:
    props = to_metadata_props(classifier(reference=REFERENCE))
    assert json.loads(props["vision.reference"])["low_confidence"] == 0.9
    assert parse_metadata(props).reference == REFERENCE
    assert "vision.reference" not in to_metadata_props(classifier())
    assert parse_metadata(to_metadata_props(classifier())).reference is None


@pytest.mark.parametrize(
    ("signals", "message"),
    [
        ({"boxes": {"cuts": [1], "counts": [1, 2]}}, "'boxes' is not a signal of 'classify'"),
        ({"class": {"counts": [1, 2]}}, "2 counts for 3 labels"),
        ({"class": {"cuts": [1], "counts": [1, 2]}}, "counts per label"),
        ({"confidence": {"counts": [1, 2, 3]}}, "cuts and counts"),
        ({"confidence": {"cuts": [0.5, 0.4], "counts": [1, 2, 3]}}, "cuts must increase"),
        ({"confidence": {"cuts": [0.5], "counts": [1, 2, 3]}}, "1 cuts make 2 bins, not 3"),
        ({"confidence": {"cuts": [0.5], "counts": [1, -2]}}, "greater than or equal to 0"),
    ],
)
def test_a_reference_that_does_not_fit_is_refused_naming_its_key(signals: dict, message: str) -> None:
    props = to_metadata_props(classifier())
    props["vision.reference"] = json.dumps({"images": 10, "low_confidence": 0.5, "signals": signals})
    with pytest.raises(ContractError) as refused:
        parse_metadata(props)
    assert refused.value.key == "vision.reference"
    assert message in str(refused.value)
