"""tf.data pipelines per task, with augmentation that moves boxes and masks together with the pixels."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from training.augmentation import Augmentation
from training.data.arrays import ArraySet


def _flip(image: tf.Tensor, mask: tf.Tensor, boxes: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    flipped = tf.stack([1 - boxes[:, 2], boxes[:, 1], 1 - boxes[:, 0], boxes[:, 3]], axis=-1)
    return tf.image.flip_left_right(image), tf.image.flip_left_right(mask), flipped


def _flip_up_down(
    image: tf.Tensor, mask: tf.Tensor, boxes: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    flipped = tf.stack([boxes[:, 0], 1 - boxes[:, 3], boxes[:, 2], 1 - boxes[:, 1]], axis=-1)
    return tf.image.flip_up_down(image), tf.image.flip_up_down(mask), flipped


def _rot90(image: tf.Tensor, mask: tf.Tensor, boxes: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    # tf.image.rot90 turns counter-clockwise: (x, y) -> (y, 1 - x).
    turned = tf.stack([boxes[:, 1], 1 - boxes[:, 2], boxes[:, 3], 1 - boxes[:, 0]], axis=-1)
    return tf.image.rot90(image), tf.image.rot90(mask), turned


def _maybe(
    transform: Callable[..., tuple[tf.Tensor, tf.Tensor, tf.Tensor]],
    image: tf.Tensor,
    mask: tf.Tensor,
    boxes: tf.Tensor,
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """`transform` on a coin toss."""
    return tf.cond(
        tf.random.uniform([]) < 0.5, lambda: transform(image, mask, boxes), lambda: (image, mask, boxes)
    )


# Points along each edge of a box: a 40-pixel edge is followed to 0.7 pixels where it leaves the picture.
EDGE_POINTS = 64


def move(
    image: tf.Tensor,
    mask: tf.Tensor,
    boxes: tf.Tensor,
    classes: tf.Tensor,
    angle: tf.Tensor,
    scale: tf.Tensor,
    shift: tuple[tf.Tensor, tf.Tensor],
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """Turn by `angle` radians (clockwise on screen) and enlarge by `scale`, both about the centre, then move
    by `shift` pixels (x, y): one resampling of image and mask, one new box each.

    Pixels from beyond the edge repeat the nearest edge pixel in image and mask alike. A box becomes the
    upright box around the part of its moved outline left in the picture; one with under 60 % of that
    outline's upright box left is dropped (class -1).
    """
    height, width = tf.cast(tf.shape(image)[0], tf.float32), tf.cast(tf.shape(image)[1], tf.float32)
    cos, sin = tf.cos(angle), tf.sin(angle)
    tx, ty = shift
    # The projective transform maps each output pixel back to the input pixel it samples; pixel centres sit at
    # whole indices, so the centre is at (size - 1) / 2.
    cx, cy = (width - 1) / 2, (height - 1) / 2
    back = tf.stack(
        [
            cos / scale,
            sin / scale,
            cx - (cos * (cx + tx) + sin * (cy + ty)) / scale,
            -sin / scale,
            cos / scale,
            cy + (sin * (cx + tx) - cos * (cy + ty)) / scale,
        ]
    )
    transform = tf.concat([back, tf.zeros([2])], axis=0)[None]

    def warp(values: tf.Tensor, interpolation: str) -> tf.Tensor:
        return tf.raw_ops.ImageProjectiveTransformV3(
            images=values[None],
            transforms=transform,
            output_shape=tf.shape(values)[:2],
            fill_value=0.0,
            interpolation=interpolation,
            fill_mode="NEAREST",
        )[0]

    # Boxes are in edge coordinates (0..1 of the side), whose centre is size / 2. A moved box's extent is that
    # of its moved outline within the picture, and of the picture's corners it now covers.
    along = tf.linspace(0.0, 1.0, EDGE_POINTS)[None]
    x1, y1, x2, y2 = (boxes[:, i : i + 1] for i in range(4))
    there = tf.ones_like(along)
    xs = tf.concat([x1 + (x2 - x1) * along, x2 * there, x2 - (x2 - x1) * along, x1 * there], -1)
    ys = tf.concat([y1 * there, y1 + (y2 - y1) * along, y2 * there, y2 - (y2 - y1) * along], -1)
    xs, ys = xs * width - width / 2, ys * height - height / 2
    moved_x = (scale * (cos * xs - sin * ys) + width / 2 + tx) / width
    moved_y = (scale * (sin * xs + cos * ys) + height / 2 + ty) / height
    on_picture = (moved_x >= 0) & (moved_x <= 1) & (moved_y >= 0) & (moved_y <= 1)
    corner_x, corner_y = tf.constant([0.0, 1.0, 0.0, 1.0]), tf.constant([0.0, 0.0, 1.0, 1.0])
    back_x, back_y = (corner_x - 0.5) * width - tx, (corner_y - 0.5) * height - ty
    source_x = ((cos * back_x + sin * back_y) / scale + width / 2) / width
    source_y = ((-sin * back_x + cos * back_y) / scale + height / 2) / height
    covered = (source_x >= x1) & (source_x <= x2) & (source_y >= y1) & (source_y <= y2)
    seen = tf.concat([on_picture, covered], -1)
    points_x = tf.concat([moved_x, tf.broadcast_to(corner_x, tf.shape(covered))], -1)
    points_y = tf.concat([moved_y, tf.broadcast_to(corner_y, tf.shape(covered))], -1)
    visible = tf.stack(
        [
            tf.reduce_min(tf.where(seen, points_x, 1.0), -1),
            tf.reduce_min(tf.where(seen, points_y, 1.0), -1),
            tf.reduce_max(tf.where(seen, points_x, 0.0), -1),
            tf.reduce_max(tf.where(seen, points_y, 0.0), -1),
        ],
        axis=-1,
    )
    hull_area = (tf.reduce_max(moved_x, -1) - tf.reduce_min(moved_x, -1)) * (
        tf.reduce_max(moved_y, -1) - tf.reduce_min(moved_y, -1)
    )
    visible_area = tf.maximum(visible[:, 2] - visible[:, 0], 0) * tf.maximum(visible[:, 3] - visible[:, 1], 0)
    classes = tf.where(visible_area >= 0.6 * hull_area, classes, -1)
    return warp(image, "BILINEAR"), warp(mask, "NEAREST"), visible, classes


def _random_move(
    image: tf.Tensor, mask: tf.Tensor, boxes: tf.Tensor, classes: tf.Tensor, augment: Augmentation
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """Rotation, shift and zoom drawn at once: zoom keeps a window of (1 - zoom)..1 of each side, anywhere."""
    angle = tf.random.uniform([], -augment.rotation, augment.rotation) * (math.pi / 180)
    scale = 1 / tf.random.uniform([], 1 - augment.zoom, 1.0)
    size = tf.cast(tf.shape(image)[:2], tf.float32)
    # Where the zoomed window sits: anywhere that keeps it inside the picture.
    window = (scale - 1) / 2
    tx = (
        tf.random.uniform([], -augment.shift, augment.shift) + tf.random.uniform([], -window, window)
    ) * size[1]
    ty = (
        tf.random.uniform([], -augment.shift, augment.shift) + tf.random.uniform([], -window, window)
    ) * size[0]
    return move(image, mask, boxes, classes, angle, scale, (tx, ty))


def augment_example(
    image: tf.Tensor, mask: tf.Tensor, boxes: tf.Tensor, classes: tf.Tensor, augment: Augmentation
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """One random draw of every enabled transform, applied alike to image, mask [H, W, 1] and boxes [M, 4]."""
    image = tf.cast(image, tf.float32)
    if augment.flip in ("horizontal", "both"):
        image, mask, boxes = _maybe(_flip, image, mask, boxes)
    if augment.flip in ("vertical", "both"):
        image, mask, boxes = _maybe(_flip_up_down, image, mask, boxes)
    if augment.quarter_turns and image.shape[0] == image.shape[1]:
        turns = tf.random.uniform([], 0, 4, dtype=tf.int32)
        for turn in range(1, 4):
            image, mask, boxes = tf.cond(
                turns >= turn,
                lambda i=image, m=mask, b=boxes: _rot90(i, m, b),
                lambda i=image, m=mask, b=boxes: (i, m, b),
            )
    if augment.rotation or augment.shift or augment.zoom:
        image, mask, boxes, classes = _random_move(image, mask, boxes, classes, augment)
    if augment.contrast:
        factor = tf.random.uniform([], 1 - augment.contrast, 1 + augment.contrast)
        mean = tf.reduce_mean(image)
        image = (image - mean) * factor + mean
    if augment.brightness:
        image = image + tf.random.uniform([], -augment.brightness, augment.brightness)
    return tf.clip_by_value(image, 0.0, 255.0), mask, boxes, classes


def draws(example: ArraySet, augment: Augmentation, count: int) -> ArraySet:
    """`count` random draws of `augment` on the one image of `example`, each with its mask and boxes."""
    image = tf.constant(example.images[0], tf.float32)
    mask = (
        tf.zeros_like(image[..., :1])
        if example.masks is None
        else tf.constant(example.masks[0, ..., None], tf.float32)
    )
    boxes = tf.zeros([0, 4]) if example.boxes is None else tf.constant(example.boxes[0], tf.float32)
    classes = (
        tf.zeros([0], tf.int32)
        if example.box_classes is None
        else tf.constant(example.box_classes[0], tf.int32)
    )
    drawn = [augment_example(image, mask, boxes, classes, augment) for _ in range(count)]
    return ArraySet(
        images=np.stack([d[0].numpy() for d in drawn]),
        labels=np.repeat(example.labels[:1], count),
        boxes=None if example.boxes is None else np.stack([d[2].numpy() for d in drawn]),
        box_classes=None if example.box_classes is None else np.stack([d[3].numpy() for d in drawn]),
        masks=None
        if example.masks is None
        else np.stack([d[1].numpy()[..., 0] for d in drawn]).astype(example.masks.dtype),
    )


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
    data: ArraySet, batch: int, augment: Augmentation | None = None, shuffle: bool = False, seed: int = 0
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
    augment: Augmentation | None = None,
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
    data: ArraySet, batch: int, augment: Augmentation | None = None, shuffle: bool = False, seed: int = 0
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
