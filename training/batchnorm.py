"""BatchNorm that works on small data: moving statistics that keep up with training, then measured exactly.

Keras's moving averages (momentum 0.99, or 0.999 in MobileNetV2) need hundreds of steps to forget their
start. A run of 60 steps ends with them half at their initial values, so inference mode scores near chance
while the same weights with batch statistics are right. Two fixes: a momentum short enough for the run's
step count, so validation (and early stopping) judges real statistics, and after fitting, the statistics
re-estimated as plain averages over the training images, which no momentum can get wrong.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import keras
import numpy as np

# Averages over about this many of the last steps; never longer than a layer's own momentum.
MOMENTUM_STEPS = 10
MIN_MOMENTUM = 0.5
# Inference mode and batch statistics may differ by this much on the headline metric before a run warns.
AGREEMENT = 0.05


def normalisations(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    """Every BatchNormalization layer in the model, nested ones (a backbone, a residual unit) included."""
    return [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]


def fit_momentum(model: keras.Model, steps: int) -> float | None:
    """Shorten each BatchNorm's momentum so its average spans ~MOMENTUM_STEPS of `steps`; returns the
    momentum set, or None when the model has no BatchNorm or the run is long enough already."""
    momentum = max(MIN_MOMENTUM, 1 - MOMENTUM_STEPS / max(steps, 1))
    changed = None
    for layer in normalisations(model):
        if momentum < layer.momentum:
            layer.momentum = changed = momentum
    return changed


@contextmanager
def _momentum(layers: list[keras.layers.BatchNormalization], value: float) -> Iterator[None]:
    saved = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = value
    try:
        yield
    finally:
        for layer, momentum in zip(layers, saved, strict=True):
            layer.momentum = momentum


def even_batches(count: int, batch: int, seed: int | None = None) -> list[np.ndarray]:
    """Indices of `count` items in batches of about `batch`, none much smaller (a batch of one has no
    variance); shuffled with a seed, as training batches are, so that no batch is all one class."""
    order = np.arange(count) if seed is None else np.random.default_rng(seed).permutation(count)
    return np.array_split(order, max(1, count // batch)) if count else []


def recalibrate(model: keras.Model, images: np.ndarray, batch: int) -> int:
    """Set every BatchNorm's moving mean and variance to their averages over `images` in batches of
    `batch`, as training saw them; returns how many layers were set.

    Layers that run in inference mode (a frozen or pre-trained base) keep theirs: a training-mode call
    does not change them.
    """
    layers = normalisations(model)
    if not layers:
        return 0
    sums = [(np.zeros(layer.moving_mean.shape), np.zeros(layer.moving_variance.shape)) for layer in layers]
    batches = even_batches(len(images), batch, seed=0)
    with _momentum(layers, 0.0):  # each call then leaves exactly its batch's statistics behind
        for chunk in batches:
            model(images[chunk], training=True)
            for (mean, variance), layer in zip(sums, layers, strict=True):
                mean += np.asarray(layer.moving_mean)
                variance += np.asarray(layer.moving_variance)
    for (mean, variance), layer in zip(sums, layers, strict=True):
        layer.moving_mean.assign(mean / len(batches))
        layer.moving_variance.assign(variance / len(batches))
    return len(layers)


@contextmanager
def batch_statistics(model: keras.Model) -> Iterator[None]:
    """Within: calls with training=True normalise by each batch's own statistics, with dropout off; after,
    every weight and moving statistic is as before."""
    saved = model.get_weights()
    dropouts = [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.Dropout)]
    rates = [layer.rate for layer in dropouts]
    for layer in dropouts:
        layer.rate = 0.0
    try:
        yield
    finally:
        for layer, rate in zip(dropouts, rates, strict=True):
            layer.rate = rate
        model.set_weights(saved)
