"""Segmentation post-processing by hand-checked cases: trimaps at the original size, their PNGs, fractions."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from service.api.options import SegmentOptions
from service.core.imaging import Geometry, PreparedImage
from service.core.tasks.segment import (
    TRIMAP_COLORS,
    TRIMAP_OVERLAY_ALPHA,
    class_fractions,
    finish,
    observe,
    render_trimap_png,
    trimap,
)

TRIMAP = ["pet", "background", "border"]


def letterbox_trimap_probabilities() -> tuple[Geometry, np.ndarray]:
    """200x100 image letterboxed into 64x64: padding says border, content is pet left, background right."""
    geometry = Geometry.plan(200, 100, 64, 64, "letterbox")
    classes = np.full((64, 64), 2)
    classes[16:48, :32] = 0
    classes[16:48, 32:] = 1
    return geometry, np.eye(3, dtype=np.float32)[classes]


def test_trimap_crops_the_letterbox_and_lands_pixels_in_place() -> None:
    geometry, probabilities = letterbox_trimap_probabilities()
    mask = trimap(probabilities, geometry)
    assert mask.dtype == np.uint8
    assert mask.shape == (100, 200)
    assert np.all(mask[:, :100] == 1)
    assert np.all(mask[:, 100:] == 2)


def test_trimap_of_a_lower_resolution_output_scales_the_content_region() -> None:
    geometry, probabilities = letterbox_trimap_probabilities()
    mask = trimap(probabilities[::2, ::2], geometry)
    assert mask.shape == (100, 200)
    assert np.all(mask[:, :100] == 1)
    assert np.all(mask[:, 100:] == 2)


def test_trimap_under_stretch_resizes_with_nearest() -> None:
    probabilities = np.zeros((4, 4, 3), dtype=np.float32)
    probabilities[..., 1] = 1
    probabilities[:2, :2] = (0, 0, 1)
    mask = trimap(probabilities, Geometry.plan(8, 6, 4, 4, "stretch"))
    expected = np.full((6, 8), 2, dtype=np.uint8)
    expected[:3, :4] = 3
    np.testing.assert_array_equal(mask, expected)


def sample_mask() -> np.ndarray:
    mask = np.full((30, 50), 2, dtype=np.uint8)
    mask[5:25, 10:30] = 1
    mask[5:25, 30:32] = 3
    return mask


def decode_png(data: bytes) -> Image.Image:
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    return Image.open(io.BytesIO(data))


def test_mask_png_holds_the_exact_values_at_the_original_size() -> None:
    geometry, probabilities = letterbox_trimap_probabilities()
    mask = trimap(probabilities, geometry)
    mask[0, 0] = 3
    image = decode_png(render_trimap_png(mask, "mask"))
    assert (image.mode, image.size) == ("L", (200, 100))
    values = np.asarray(image)
    np.testing.assert_array_equal(values, mask)
    assert set(np.unique(values)) == {1, 2, 3}


def test_color_png_gives_each_class_its_own_colour() -> None:
    mask = sample_mask()
    image = decode_png(render_trimap_png(mask, "color"))
    # A palette image: the pixels hold the trimap values and the palette paints them.
    assert (image.mode, image.size) == ("P", (50, 30))
    np.testing.assert_array_equal(np.asarray(image), mask)
    pixels = np.asarray(image.convert("RGB"))
    for value in (1, 2, 3):
        assert np.all(pixels[mask == value] == TRIMAP_COLORS[value])
    assert len({TRIMAP_COLORS[1], TRIMAP_COLORS[2], TRIMAP_COLORS[3]}) == 3


def test_overlay_blends_the_colours_over_the_photo() -> None:
    mask = sample_mask()
    photo = Image.new("RGB", (50, 30), (100, 100, 100))
    pixels = np.asarray(decode_png(render_trimap_png(mask, "overlay", photo))).astype(float)
    assert pixels.shape == (30, 50, 3)
    for value in (1, 2, 3):
        alpha = round(255 * TRIMAP_OVERLAY_ALPHA[value]) / 255
        expected = 100 + (np.array(TRIMAP_COLORS[value]) - 100) * alpha
        np.testing.assert_allclose(
            pixels[mask == value], np.tile(expected, ((mask == value).sum(), 1)), atol=1
        )
        assert 0 < alpha < 1


def test_overlay_needs_a_preview() -> None:
    with pytest.raises(ValueError, match="preview"):
        render_trimap_png(sample_mask(), "overlay")


def test_overlay_is_drawn_at_the_size_of_a_smaller_preview() -> None:
    mask = np.full((300, 500), 2, dtype=np.uint8)
    mask[:, :250] = 1
    photo = Image.new("RGB", (50, 30), (100, 100, 100))
    pixels = np.asarray(decode_png(render_trimap_png(mask, "overlay", photo)))
    assert pixels.shape == (30, 50, 3)
    pet, background = pixels[15, 10], pixels[15, 40]
    assert pet[0] > background[0]
    assert background[2] > pet[2]


def test_class_fractions_count_pixels_per_label() -> None:
    fractions = class_fractions(sample_mask(), TRIMAP)
    assert fractions == {"pet": 400 / 1500, "background": 1060 / 1500, "border": 40 / 1500}
    assert sum(fractions.values()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"1\.\.3"):
        class_fractions(np.zeros((2, 2), dtype=np.uint8), TRIMAP)


def test_drift_observes_the_mean_winning_probability_and_the_class_fractions() -> None:
    probabilities = np.zeros((2, 2, 3), np.float32)
    probabilities[..., 1] = 1.0  # background everywhere, certain but for one pixel
    probabilities[0, 0] = (0.6, 0.3, 0.1)
    geometry = Geometry.plan(4, 4, 2, 2, "stretch")
    image = PreparedImage(np.zeros((2, 2, 3), np.float32), geometry, None, 0.0)
    outputs = {"probabilities": probabilities}
    options = SegmentOptions()
    observed = observe(outputs, image, finish(outputs, image, TRIMAP, options), TRIMAP, options)
    assert observed.confidence == pytest.approx((0.6 + 3) / 4)
    assert observed.mixes == {"class_fractions": {0: 0.25, 1: 0.75, 2: 0.0}}
