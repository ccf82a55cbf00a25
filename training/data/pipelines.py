"""tf.data pipelines per task, with augmentation that moves boxes and masks together with the pixels."""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

from training.data.arrays import ArraySet


@dataclass(frozen=True)
class Augment:
    """Random transforms: horizontal flip, quarter turns (square inputs), crop-and-scale, brightness."""

    flip: bool = True
    rotate: bool = True
    min_scale: float = 0.8
    brightness: float = 30.0
    contrast: float = 0.2

    @classmethod
    def none(cls) -> Augment:
        return cls(flip=False, rotate=False, min_scale=1.0, brightness=0.0, contrast=0.0)


def _flip(image: tf.Tensor, mask: tf.Tensor, boxes: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    flipped = tf.stack([1 - boxes[:, 2], boxes[:, 1], 1 - boxes[:, 0], boxes[:, 3]], axis=-1)
    return tf.image.flip_left_right(image), tf.image.flip_left_right(mask), flipped


def _rot90(image: tf.Tensor, mask: tf.Tensor, boxes: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    # tf.image.rot90 turns counter-clockwise: (x, y) -> (y, 1 - x).
    turned = tf.stack([boxes[:, 1], 1 - boxes[:, 2], boxes[:, 3], 1 - boxes[:, 0]], axis=-1)
    return tf.image.rot90(image), tf.image.rot90(mask), turned


def _crop_scale(
    image: tf.Tensor, mask: tf.Tensor, boxes: tf.Tensor, classes: tf.Tensor, min_scale: float
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """Crop a random window (min_scale..1 of each side), resize it back; drop boxes mostly cut off."""
    size = tf.shape(image)[:2]
    scale = tf.random.uniform([], min_scale, 1.0)
    x0, y0 = tf.random.uniform([], 0.0, 1.0 - scale), tf.random.uniform([], 0.0, 1.0 - scale)
    window = tf.stack([[y0, x0, y0 + scale, x0 + scale]])
    image = tf.image.crop_and_resize(image[None], window, [0], size)[0]
    mask = tf.image.crop_and_resize(mask[None], window, [0], size, method="nearest")[0]
    moved = (boxes - tf.stack([x0, y0, x0, y0])) / scale
    clipped = tf.clip_by_value(moved, 0.0, 1.0)
    area = (moved[:, 2] - moved[:, 0]) * (moved[:, 3] - moved[:, 1])
    kept_area = (clipped[:, 2] - clipped[:, 0]) * (clipped[:, 3] - clipped[:, 1])
    keep = kept_area >= 0.6 * area
    return image, mask, clipped, tf.where(keep, classes, -1)


def augment_example(
    image: tf.Tensor, mask: tf.Tensor, boxes: tf.Tensor, classes: tf.Tensor, augment: Augment
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """One random draw of every enabled transform, applied alike to image, mask [H, W, 1] and boxes [M, 4]."""
    if augment.flip:
        image, mask, boxes = tf.cond(
            tf.random.uniform([]) < 0.5, lambda: _flip(image, mask, boxes), lambda: (image, mask, boxes)
        )
    if augment.rotate and image.shape[0] == image.shape[1]:
        turns = tf.random.uniform([], 0, 4, dtype=tf.int32)
        for turn in range(1, 4):
            image, mask, boxes = tf.cond(
                turns >= turn,
                lambda i=image, m=mask, b=boxes: _rot90(i, m, b),
                lambda i=image, m=mask, b=boxes: (i, m, b),
            )
    if augment.min_scale < 1.0:
        image, mask, boxes, classes = _crop_scale(image, mask, boxes, classes, augment.min_scale)
    if augment.contrast:
        factor = tf.random.uniform([], 1 - augment.contrast, 1 + augment.contrast)
        mean = tf.reduce_mean(image)
        image = (image - mean) * factor + mean
    if augment.brightness:
        image = image + tf.random.uniform([], -augment.brightness, augment.brightness)
    return tf.clip_by_value(image, 0.0, 255.0), mask, boxes, classes


def encode_grid(boxes: tf.Tensor, classes: tf.Tensor, grid: int, num_classes: int) -> tf.Tensor:
    """Boxes [M, 4], classes [M] (-1 pads) -> [grid*grid, 5 + C]: flag, box, one-hot in the centre's cell."""
    valid = classes >= 0
    boxes, classes = tf.boolean_mask(boxes, valid), tf.boolean_mask(classes, valid)
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    cell = tf.clip_by_value(tf.cast(tf.floor(centre * grid), tf.int32), 0, grid - 1)
    index = cell[:, 1] * grid + cell[:, 0]
    updates = tf.concat(
        [tf.ones_like(boxes[:, :1]), boxes, tf.one_hot(classes, num_classes, dtype=boxes.dtype)], axis=-1
    )
    return tf.tensor_scatter_nd_update(tf.zeros([grid * grid, 5 + num_classes]), index[:, None], updates)


def _shuffled(ds: tf.data.Dataset, shuffle: bool, seed: int, size: int) -> tf.data.Dataset:
    if shuffle:
        ds = ds.shuffle(size, seed=seed, reshuffle_each_iteration=True)
    return ds


def classify_dataset(
    data: ArraySet, batch: int, augment: Augment | None = None, shuffle: bool = False, seed: int = 0
) -> tf.data.Dataset:
    """(image, class id) batches."""
    ds = _shuffled(tf.data.Dataset.from_tensor_slices((data.images, data.labels)), shuffle, seed, len(data))
    if augment is not None:

        def apply(image: tf.Tensor, label: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            mask = tf.zeros_like(image[..., :1])
            out, _, _, _ = augment_example(image, mask, tf.zeros([0, 4]), tf.zeros([0], tf.int32), augment)
            return out, label

        ds = ds.map(apply, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch).prefetch(tf.data.AUTOTUNE)


def detect_dataset(
    data: ArraySet,
    batch: int,
    grid: int,
    num_classes: int,
    augment: Augment | None = None,
    shuffle: bool = False,
    seed: int = 0,
) -> tf.data.Dataset:
    """(image, grid target) batches for the YOLO-style detector."""
    slices = (data.images, data.boxes, data.box_classes)
    ds = _shuffled(tf.data.Dataset.from_tensor_slices(slices), shuffle, seed, len(data))

    def apply(image: tf.Tensor, boxes: tf.Tensor, classes: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        if augment is not None:
            mask = tf.zeros_like(image[..., :1])
            image, _, boxes, classes = augment_example(image, mask, boxes, classes, augment)
        return image, encode_grid(boxes, classes, grid, num_classes)

    return ds.map(apply, num_parallel_calls=tf.data.AUTOTUNE).batch(batch).prefetch(tf.data.AUTOTUNE)


def segment_dataset(
    data: ArraySet, batch: int, augment: Augment | None = None, shuffle: bool = False, seed: int = 0
) -> tf.data.Dataset:
    """(image, mask [H, W] of class ids 0 pet, 1 background, 2 border) batches."""
    ds = _shuffled(tf.data.Dataset.from_tensor_slices((data.images, data.masks)), shuffle, seed, len(data))

    def apply(image: tf.Tensor, mask: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        mask = tf.cast(mask[..., None], tf.float32)
        if augment is not None:
            image, mask, _, _ = augment_example(
                image, mask, tf.zeros([0, 4]), tf.zeros([0], tf.int32), augment
            )
        return image, tf.cast(mask[..., 0], tf.int32)

    return ds.map(apply, num_parallel_calls=tf.data.AUTOTUNE).batch(batch).prefetch(tf.data.AUTOTUNE)
