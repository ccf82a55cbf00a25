"""BatchNorm's moving statistics: a momentum that fits the run, exact averages after it, a check that
leaves the model as it was."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow")

import keras

from training import batchnorm


def normalised(features: int = 3, trainable: bool = True) -> keras.Model:
    inputs = keras.Input((features,))
    norm = keras.layers.BatchNormalization(trainable=trainable)
    return keras.Model(inputs, keras.layers.Dropout(0.5)(norm(inputs)))


def test_recalibration_sets_the_averages_of_the_training_batches() -> None:
    rng = np.random.default_rng(0)
    images = rng.normal([5.0, -2.0, 0.5], [2.0, 0.5, 1.0], size=(64, 3)).astype(np.float32)
    model = normalised()
    assert batchnorm.recalibrate(model, images, batch=16) == 1
    (layer,) = batchnorm.normalisations(model)
    batches = batchnorm.even_batches(len(images), 16, seed=0)
    np.testing.assert_allclose(np.asarray(layer.moving_mean), images.mean(0), rtol=1e-5, atol=1e-5)
    expected_variance = np.mean([images[b].var(0) for b in batches], axis=0)
    np.testing.assert_allclose(np.asarray(layer.moving_variance), expected_variance, rtol=1e-4)
    assert layer.momentum == 0.99, "the momentum is restored after the pass"


def test_a_frozen_batchnorm_keeps_its_statistics() -> None:
    model = normalised(trainable=False)
    batchnorm.recalibrate(model, np.full((32, 3), 7.0, np.float32), batch=8)
    (layer,) = batchnorm.normalisations(model)
    np.testing.assert_array_equal(np.asarray(layer.moving_mean), np.zeros(3))


def test_nested_batchnorm_layers_are_found() -> None:
    inner = normalised()
    outer = keras.Model(inner.input, keras.layers.Dense(2)(inner.output))
    wrapped = keras.Sequential([keras.Input((3,)), outer])
    assert len(batchnorm.normalisations(wrapped)) == 1


@pytest.mark.parametrize(("steps", "expected"), [(60, 1 - 10 / 60), (10, 0.5), (5000, None)])
def test_momentum_fits_the_number_of_steps(steps: int, expected: float | None) -> None:
    model = normalised()
    assert batchnorm.fit_momentum(model, steps) == pytest.approx(expected)
    (layer,) = batchnorm.normalisations(model)
    assert layer.momentum == pytest.approx(expected or 0.99)


def test_batch_statistics_leave_weights_and_dropout_as_they_were() -> None:
    model = normalised()
    before = [w.copy() for w in model.get_weights()]
    images = np.random.default_rng(1).normal(3.0, 2.0, (16, 3)).astype(np.float32)
    with batchnorm.batch_statistics(model):
        out = np.asarray(model(images, training=True))
        # Normalised by its own batch, with dropout off: each column has mean 0 and unit variance.
        np.testing.assert_allclose(out.mean(0), 0, atol=1e-4)
        np.testing.assert_allclose(out.std(0), 1, atol=1e-2)
    for was, now in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(was, now)
    (dropout,) = [layer for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    assert dropout.rate == 0.5


@pytest.mark.parametrize(("count", "batch"), [(17, 8), (48, 32), (7, 32), (100, 8)])
def test_even_batches_cover_everything_once_and_none_is_tiny(count: int, batch: int) -> None:
    batches = batchnorm.even_batches(count, batch, seed=3)
    assert sorted(np.concatenate(batches).tolist()) == list(range(count))
    assert min(len(b) for b in batches) >= min(count, batch // 2)
