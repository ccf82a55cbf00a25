"""The run's pictures tell the truth: samples across classes with the mistakes first, curves readable after
one epoch, and a detector's best box drawn even when it scores under the served threshold."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from training.data.arrays import ArraySet
from training.plots import curves_figure, plot_samples, sample_indices

LABELS = ("circle", "square")


def test_samples_show_every_class_and_the_mistakes_first() -> None:
    truth = np.repeat(np.arange(4), 10)  # sorted by class, as a folder-per-class test split is
    predicted = truth.copy()
    predicted[[12, 25]] = 0
    chosen = sample_indices(truth, predicted)
    assert len(chosen) == 8
    assert set(truth[chosen]) == {0, 1, 2, 3}
    assert set(chosen[:2]) == {12, 25}
    assert all(truth[chosen[2:]] == predicted[chosen[2:]])


def test_samples_of_fewer_images_than_the_picture_holds_are_all_shown() -> None:
    truth = np.array([1, 0, 1])
    assert sorted(sample_indices(truth, np.array([1, 1, 1]))) == [0, 1, 2]


def test_one_epoch_of_curves_shows_its_points_on_whole_epoch_ticks() -> None:
    for epochs in (1, 3):
        history = {"loss": [0.9, 0.5, 0.4][:epochs], "val_loss": [1.0, 0.7, 0.6][:epochs]}
        figure = curves_figure(history, kept_epoch=epochs)
        figure.canvas.draw()
        axes = figure.axes[0]
        plotted = [line for line in axes.get_lines() if line.get_label() in ("train", "validation")]
        assert len(plotted) == 2
        assert all(line.get_marker() not in (None, "None", "") for line in plotted)
        ticks = [tick.get_text().replace("\u2212", "-") for tick in axes.get_xticklabels() if tick.get_text()]
        assert ticks
        assert all(float(tick).is_integer() for tick in ticks), ticks


def _orange_pixels(path: Path) -> int:
    pixels = np.asarray(Image.open(path).convert("RGB")).astype(int)
    return int(
        np.sum((abs(pixels[..., 0] - 255) < 30) & (abs(pixels[..., 1] - 165) < 30) & (pixels[..., 2] < 40))
    )


def test_a_detectors_best_box_is_drawn_when_none_reaches_the_threshold(tmp_path: Path) -> None:
    sample = ArraySet(
        images=np.full((1, 32, 32, 3), 90, np.float32),
        labels=np.zeros(1, int),
        boxes=np.array([[[0.2, 0.2, 0.8, 0.8]]], np.float32),
        box_classes=np.zeros((1, 1), int),
    )
    paths = {}
    for name, iou in (("weak", 0.1), ("strong", 0.9)):
        outputs = {
            "boxes": np.array([[[0.25, 0.25, 0.75, 0.75]]], np.float32),
            "iou": np.array([[iou]], np.float32),
            "class_probabilities": np.array([[[0.9, 0.1]]], np.float32),
        }
        paths[name] = tmp_path / f"{name}.png"
        plot_samples("detect", sample, outputs, LABELS, paths[name])
    legend_only = _orange_pixels(paths["strong"])
    assert _orange_pixels(paths["weak"]) > legend_only + 50
