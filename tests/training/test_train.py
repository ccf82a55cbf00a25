"""Early stopping: it judges validation loss only after the run's warm-up epochs, then stops as usual; a
fine-tuning phase follows the head's with its own warm-up and a lower learning rate. Progress without a
terminal still says where an epoch is."""

from __future__ import annotations

import pytest

pytest.importorskip("tensorflow")

import keras

from training.augmentation import Augmentation
from training.config import TrainConfig
from training.train import Phase, TqdmProgress, augmentation, early_stopping, kept_epoch, phases

# The validation loss of a real `make models` segmenter run: BatchNorm's moving statistics trailed the weights
# while the learning rate was high, so the loss climbed for four epochs before it fell.
CLIMB_THEN_FALL = [0.55, 0.71, 0.75, 0.84, 0.56, 0.20, 0.10, 0.08]


def fit_on(losses: list[float], config: TrainConfig) -> tuple[int, int]:
    """Feed `losses` to the run's early stopping as epochs end: (epochs run, epoch whose weights are kept)."""
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False)])
    stopping = early_stopping(config)
    stopping.set_model(model)
    model.stop_training = False  # as fit() starts
    stopping.on_train_begin()
    epochs_run = 0
    for epoch, loss in enumerate(losses):
        model.layers[0].kernel.assign([[float(epoch + 1)]])  # the weights record which epoch they are from
        stopping.on_epoch_end(epoch, {"val_loss": loss})
        epochs_run = epoch + 1
        if model.stop_training:
            break
    stopping.on_train_end()
    weights_from = round(float(model.layers[0].kernel.numpy()[0, 0]))
    assert kept_epoch(stopping, epochs_run) == weights_from
    return epochs_run, weights_from


def config(epochs: int, patience: int, early_stop_after: int | None = None) -> TrainConfig:
    return TrainConfig(
        task="segment",
        data="unused",
        run_dir="unused",
        epochs=epochs,
        patience=patience,
        early_stop_after=early_stop_after,
    )


def test_the_default_waits_half_the_epochs() -> None:
    assert config(8, 4).early_stop_after == 4
    assert config(1, 4).early_stop_after == 0
    assert config(8, 4, early_stop_after=0).early_stop_after == 0


def test_a_climbing_warm_up_does_not_stop_the_run() -> None:
    assert fit_on(CLIMB_THEN_FALL, config(8, 4)) == (8, 8)


def test_judging_from_the_first_epoch_kept_the_warm_up_weights() -> None:
    assert fit_on(CLIMB_THEN_FALL, config(8, 4, early_stop_after=0)) == (5, 1)


def test_after_the_warm_up_it_stops_on_a_plateau_and_keeps_the_best() -> None:
    losses = [1.0, 1.2, 1.1, 0.9, 0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6]
    assert fit_on(losses, config(12, 4, early_stop_after=4)) == (9, 5)


def test_warm_up_as_long_as_the_run_keeps_the_last_weights() -> None:
    assert fit_on([0.3, 0.2, 0.9], config(3, 1, early_stop_after=3)) == (3, 3)


def test_a_run_without_fine_tuning_is_one_phase() -> None:
    assert phases(config(8, 4)) == [Phase("", 8, 2e-3)]


def test_fine_tuning_follows_the_head_at_a_tenth_of_its_rate_by_default() -> None:
    tuned = TrainConfig(task="classify", data="unused", run_dir="unused", epochs=5, fine_tune_epochs=6)
    assert phases(tuned) == [Phase("head", 5, 2e-3), Phase("fine-tune", 6, pytest.approx(2e-4))]
    tuned.fine_tune_lr = 1e-5
    assert phases(tuned)[1].learning_rate == 1e-5


def test_the_fine_tuning_phase_waits_half_its_own_epochs() -> None:
    assert early_stopping(config(8, 4), first_epoch=8, epochs=6).start_from_epoch == 11
    assert early_stopping(config(8, 4)).start_from_epoch == 4


def test_without_a_terminal_an_epoch_says_where_it_is_every_heartbeat(
    capsys: pytest.CaptureFixture[str],
) -> None:
    quiet, beating = TqdmProgress(2, 3, heartbeat=3600), TqdmProgress(2, 3, heartbeat=0)
    for progress in (quiet, beating):
        progress.on_epoch_begin(0)
        progress.on_train_batch_end(0, {"loss": 0.5})
        progress.on_test_batch_end(1)
    assert capsys.readouterr().out.splitlines() == [
        "epoch 1/2: batch 1/3, loss 0.5000",
        "epoch 1/2: validating, batch 2",
    ]


def test_the_augmentation_is_said_in_words() -> None:
    shapes = TrainConfig(task="classify", data="data/shapes", run_dir="run")
    assert shapes.augmentation.describe() == (
        "horizontal flips, crops of 85 to 100 % of each side, scaled back, "
        "brightness ±30 levels, contrast ±20 %"
    )
    digits = TrainConfig(task="classify", data="digits", run_dir="run")
    assert digits.augmentation.describe().startswith("crops of 90 to 100 %")
    unaugmented = TrainConfig(
        task="classify", data="data/shapes", run_dir="run", augmentation=Augmentation.none()
    )
    assert unaugmented.augmentation.describe() == "none"
    assert augmentation(unaugmented) is None
