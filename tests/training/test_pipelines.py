"""Augmentation moves pixels, masks and boxes together; grid targets land in the centre's cell."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from training.data.pipelines import Augment, augment_example, encode_grid  # noqa: E402


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


@pytest.mark.parametrize("seed", range(6))
def test_image_mask_and_box_move_together(seed: int) -> None:
    tf.random.set_seed(seed)
    image, mask, box = _square_scene()
    augment = Augment(flip=True, rotate=True, min_scale=0.85, brightness=0.0, contrast=0.0)
    out_image, out_mask, out_box, out_cls = augment_example(
        tf.constant(image), tf.constant(mask), tf.constant(box), tf.constant([0]), augment
    )
    out_image, out_mask, out_box = out_image.numpy(), out_mask.numpy(), out_box.numpy()
    bright = out_image[..., :1] > 127
    assert np.mean(bright == (out_mask > 0.5)) > 0.97
    if out_cls.numpy()[0] >= 0:
        np.testing.assert_allclose(out_box[0], _extent(out_mask), atol=2.5 / 48)


def test_brightness_keeps_pixels_in_range() -> None:
    image, mask, box = _square_scene()
    out, _, _, _ = augment_example(
        tf.constant(image), tf.constant(mask), tf.constant(box), tf.constant([0]), Augment(brightness=80.0)
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
