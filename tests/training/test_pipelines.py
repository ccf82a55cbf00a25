"""Augmentation moves pixels, masks and boxes together; grid targets land in the centre's cell."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from training.augmentation import Augmentation  # noqa: E402
from training.data.pipelines import augment_example, encode_grid, move  # noqa: E402


def _square_scene() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    image = np.zeros((48, 48, 3), np.float32)
    image[8:20, 24:44] = 255.0
    mask = np.zeros((48, 48, 1), np.float32)
    mask[8:20, 24:44] = 1.0
    box = np.array([[24 / 48, 8 / 48, 44 / 48, 20 / 48]], np.float32)
    return image, mask, box


def _extent(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask[..., 0] > 0.5)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]) / mask.shape[0]


EVERY_MOVE = Augmentation(
    flip="both", quarter_turns=True, rotation=25.0, shift=0.1, zoom=0.15, brightness=0.0, contrast=0.0
)


@pytest.mark.parametrize("seed", range(8))
def test_image_mask_and_box_move_together(seed: int) -> None:
    tf.random.set_seed(seed)
    image, mask, box = _square_scene()
    augment = EVERY_MOVE
    out_image, out_mask, out_box, out_cls = augment_example(
        tf.constant(image), tf.constant(mask), tf.constant(box), tf.constant([0]), augment
    )
    out_image, out_mask, out_box = out_image.numpy(), out_mask.numpy(), out_box.numpy()
    bright = out_image[..., :1] > 127
    assert np.mean(bright == (out_mask > 0.5)) > 0.97
    if out_cls.numpy()[0] >= 0:
        np.testing.assert_allclose(out_box[0], _extent(out_mask), atol=1.5 / 48)


def _moved(degrees: float, scale: float, shift: tuple[float, float]) -> tuple[np.ndarray, ...]:
    image, mask, box = _square_scene()
    moved = move(
        tf.constant(image),
        tf.constant(mask),
        tf.constant(box),
        tf.constant([0]),
        tf.constant(np.radians(degrees), tf.float32),
        tf.constant(scale),
        (tf.constant(shift[0]), tf.constant(shift[1])),
    )
    return tuple(value.numpy() for value in moved)


@pytest.mark.parametrize("degrees", [-40.0, 0.0, 30.0, 90.0])
@pytest.mark.parametrize("scale", [0.9, 1.2])
def test_a_moved_box_holds_the_moved_outline(degrees: float, scale: float) -> None:
    out_image, out_mask, out_box, out_cls = _moved(degrees, scale, (3.0, 5.0))
    assert out_cls[0] == 0
    np.testing.assert_allclose(out_box[0], _extent(out_mask), atol=1.5 / 48)
    assert np.mean((out_image[..., :1] > 127) == (out_mask > 0.5)) > 0.97


def test_a_quarter_turn_clockwise_moves_the_top_edge_to_the_right() -> None:
    # The bar across the top right (rows 8-20, columns 24-44); clockwise on screen, (x, y) -> (H - y, x).
    _, out_mask, out_box, _ = _moved(90.0, 1.0, (0.0, 0.0))
    np.testing.assert_allclose(out_box[0], np.array([28, 24, 40, 44]) / 48, atol=1e-5)
    np.testing.assert_allclose(_extent(out_mask), np.array([28, 24, 40, 44]) / 48, atol=1e-5)


def test_a_zoomed_box_is_cut_where_the_picture_ends() -> None:
    # x 24..44 -> 24..49 and y 8..20 -> 4..19 about the centre (24, 24); the picture ends at 48.
    _, out_mask, out_box, out_cls = _moved(0.0, 1.25, (0.0, 0.0))
    assert out_cls[0] == 0
    # Where an edge leaves the picture the box follows it to within one step of EDGE_POINTS (0.4 px here).
    np.testing.assert_allclose(out_box[0], np.array([24, 4, 48, 19]) / 48, atol=0.5 / 48)
    np.testing.assert_allclose(_extent(out_mask), np.array([24, 4, 48, 19]) / 48, atol=1.01 / 48)


def test_a_box_moved_mostly_out_of_the_picture_is_dropped() -> None:
    assert _moved(0.0, 1.0, (0.0, -14.0))[3].tolist() == [-1]


def test_with_every_transform_off_the_image_is_unchanged() -> None:
    image, mask, box = _square_scene()
    out_image, _, out_box, _ = augment_example(
        tf.constant(image), tf.constant(mask), tf.constant(box), tf.constant([0]), Augmentation.none()
    )
    np.testing.assert_array_equal(out_image.numpy(), image)
    np.testing.assert_array_equal(out_box.numpy(), box)


def test_brightness_keeps_pixels_in_range() -> None:
    image, mask, box = _square_scene()
    out, _, _, _ = augment_example(
        tf.constant(image),
        tf.constant(mask),
        tf.constant(box),
        tf.constant([0]),
        Augmentation(brightness=80.0),
    )
    assert float(tf.reduce_min(out)) >= 0.0
    assert float(tf.reduce_max(out)) <= 255.0


def test_encode_grid_marks_only_the_centre_cell() -> None:
    boxes = tf.constant([[0.5, 0.5, 0.7, 0.9], [0.0, 0.0, 0.0, 0.0]])
    target = encode_grid(boxes, tf.constant([2, -1]), grid=4, num_classes=3).numpy()
    # Centre (0.6, 0.7) -> column 2, row 2 -> cell 10.
    assert target.shape == (16, 8)
    assert target[:, 0].nonzero()[0].tolist() == [10]
    np.testing.assert_allclose(target[10], [1, 0.5, 0.5, 0.7, 0.9, 0, 0, 1])
