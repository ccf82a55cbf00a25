"""Explanation by hand-checked cases: heat grids over the image's content, their picture, and refusals."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from service.api.options import ExplainOptions
from service.core.contract import ModelMetadata, parse_metadata, to_metadata_props
from service.core.errors import CannotExplainError, UnknownLabelError
from service.core.imaging import Geometry, PreparedImage
from service.core.tasks.explain import HEAT_ALPHA, HEAT_PALETTE, check, finish_grid, finish_picture, heat_grid

LABELS = ("cat", "dog")


def maps_with_a_hot_cell(height: int = 8, width: int = 8, cell: tuple[int, int] = (2, 5)) -> np.ndarray:
    """[h, w, 2]: for `cat` one cell at 3, the rest 1; for `dog` a ramp left to right."""
    maps = np.ones((height, width, 2), dtype=np.float32)
    maps[cell[0], cell[1], 0] = 3
    maps[..., 1] = np.arange(width, dtype=np.float32)[None, :]
    return maps


def prepared(geometry: Geometry, preview: Image.Image | None = None) -> PreparedImage:
    pixels = np.zeros((geometry.input_height, geometry.input_width, 3), np.float32)
    return PreparedImage(pixels, geometry, preview, brightness=0.0)


def test_a_grid_is_the_class_map_scaled_to_0_to_1() -> None:
    grid = heat_grid(maps_with_a_hot_cell(), 0, Geometry.plan(64, 64, 8, 8, "stretch"))
    assert grid.shape == (8, 8)
    assert grid[2, 5] == 1
    assert grid.sum() == 1
    ramp = heat_grid(maps_with_a_hot_cell(), 1, Geometry.plan(64, 64, 8, 8, "stretch"))
    assert np.allclose(ramp[0], np.arange(8) / 7)


def test_a_flat_map_is_all_zero_not_nan() -> None:
    grid = heat_grid(np.ones((4, 4, 2), np.float32), 0, Geometry.plan(16, 16, 8, 8, "stretch"))
    assert np.array_equal(grid, np.zeros((4, 4)))


def test_a_letterboxed_grid_covers_the_image_alone() -> None:
    # 200x100 into 64x64: content rows 16..48 of the input, rows 2..6 of an 8x8 map.
    maps = maps_with_a_hot_cell(cell=(0, 0))  # the hot cell lies in the padding
    maps[3, 1, 0] = 2
    grid = heat_grid(maps, 0, Geometry.plan(200, 100, 64, 64, "letterbox"))
    assert grid.shape == (4, 8)
    assert np.unravel_index(grid.argmax(), grid.shape) == (1, 1)


def test_a_map_with_nan_is_refused() -> None:
    maps = maps_with_a_hot_cell()
    maps[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        heat_grid(maps, 0, Geometry.plan(8, 8, 8, 8, "stretch"))


def test_the_top_class_is_explained_unless_the_options_name_one() -> None:
    outputs = {"probabilities": np.array([0.3, 0.7], np.float32), "heatmap": maps_with_a_hot_cell()}
    image = prepared(Geometry.plan(80, 40, 8, 8, "stretch"))
    top = finish_grid(outputs, image, LABELS, ExplainOptions())
    assert (top.label, top.class_id, top.score) == ("dog", 1, pytest.approx(0.7))
    assert (top.size.width, top.size.height) == (80, 40)
    chosen = finish_grid(outputs, image, LABELS, ExplainOptions(**{"class": "cat"}))
    assert (chosen.label, chosen.score, chosen.grid[2, 5]) == ("cat", pytest.approx(0.3), 1)
    assert chosen.png is None


def test_the_picture_is_the_preview_with_the_heat_laid_over_it() -> None:
    maps = np.zeros((8, 8, 2), np.float32)
    maps[:4, 4:, 0] = 1  # the top right quarter is hot
    outputs = {"probabilities": np.array([0.9, 0.1], np.float32), "heatmap": maps}
    preview = Image.new("RGB", (160, 80), (128, 128, 128))
    image = prepared(Geometry.plan(160, 80, 8, 8, "stretch"), preview)
    picture = Image.open(io.BytesIO(finish_picture(outputs, image, LABELS, ExplainOptions()).png))
    assert (picture.format, picture.size, picture.mode) == ("PNG", (160, 80), "RGB")
    pixels = np.asarray(picture, dtype=np.float64)
    # Inside the hot quarter: the palette's top at full opacity over the grey; inside the cold bottom left:
    # its bottom at the least opacity.
    low, high = HEAT_ALPHA
    hottest, coldest = np.array(HEAT_PALETTE[-3:]), np.array(HEAT_PALETTE[:3])
    assert np.abs(pixels[15, 130] - (high * hottest + (1 - high) * 128)).max() < 2
    assert np.abs(pixels[65, 30] - (low * coldest + (1 - low) * 128)).max() < 2


def explainer(outputs: dict[str, str]) -> ModelMetadata:
    return parse_metadata(
        {
            "vision.schema": "1",
            "vision.task": "classify",
            "vision.name": "pets",
            "vision.version": "1",
            "vision.labels": json.dumps(LABELS),
            "vision.input": '{"name": "image", "height": 8, "width": 8, "channels": 3}',
            "vision.resize": "stretch",
            "vision.outputs": json.dumps(outputs),
        }
    )


def test_a_model_without_heatmap_or_a_label_it_lacks_is_refused_before_any_image() -> None:
    plain = explainer({"probabilities": "p"})
    with pytest.raises(CannotExplainError, match="no heatmap output") as refused:
        check(plain, ExplainOptions())
    assert refused.value.detail == {"model": "pets", "outputs": ["probabilities"]}
    explaining = explainer({"probabilities": "p", "heatmap": "h"})
    check(explaining, ExplainOptions(**{"class": "dog"}))
    with pytest.raises(UnknownLabelError, match="no label 'cow'") as unknown:
        check(explaining, ExplainOptions(**{"class": "cow"}))
    assert unknown.value.detail == {"labels": ["cat", "dog"]}
    with pytest.raises(UnknownLabelError) as long:
        check(explaining, ExplainOptions(**{"class": "x" * 5000}))
    assert len(long.value.message) < 200  # a query string's worth of label is not echoed whole
    assert to_metadata_props(explaining)["vision.outputs"] == '{"probabilities": "p", "heatmap": "h"}'
