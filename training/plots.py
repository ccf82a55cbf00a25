"""PNG pictures for people: training curves, sample predictions beside the truth, a confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from service.core.tasks.segment import TRIMAP_COLORS
from training.data.arrays import ArraySet
from training.evaluate.evaluate import decode_detections
from training.evaluate.metrics import confusion_matrix

# Row = trimap value, as `/segment?style=color` paints it.
_TRIMAP_PAINT = np.array(TRIMAP_COLORS, np.float32)


def plot_curves(
    history: dict[str, list[float]],
    path: Path,
    kept_epoch: int | None = None,
    phase_starts: Sequence[int] = (),
) -> None:
    """Loss and each tracked metric per epoch (1-based), training against validation, with the epoch whose
    weights were kept marked and a line where fine-tuning began."""
    keys = [k for k in history if not k.startswith("val_") and k != "learning_rate"]
    fig, axes = plt.subplots(1, len(keys), figsize=(3.6 * len(keys), 3), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        epochs = np.arange(1, len(history[key]) + 1)
        ax.plot(epochs, history[key], label="train")
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], label="validation")
        for start in phase_starts:
            ax.axvline(start + 0.5, color="grey", ls="--", lw=0.8, label="fine-tuning starts")
        if kept_epoch:
            ax.axvline(kept_epoch, color="green", ls=":", lw=1, label=f"kept: epoch {kept_epoch}")
        ax.set_title(key)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=72)
    plt.close(fig)


def plot_confusion(truth: np.ndarray, predicted: np.ndarray, labels: Sequence[str], path: Path) -> None:
    """The held-out confusion matrix: rows the true class, columns the predicted one, counts written in."""
    conf = confusion_matrix(truth, predicted, len(labels))
    side = 1.2 + 0.45 * len(labels)
    fig, ax = plt.subplots(figsize=(side + 1, side))
    ax.imshow(conf, cmap="Blues")
    ticks = np.arange(len(labels))
    ax.set_xticks(ticks, labels, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(ticks, labels, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if len(labels) <= 40:
        for (row, col), count in np.ndenumerate(conf):
            if count:
                colour = "white" if count > conf.max() / 2 else "black"
                ax.text(col, row, str(count), ha="center", va="center", fontsize=6, color=colour)
    ax.set_title(f"held-out accuracy {np.trace(conf) / max(conf.sum(), 1):.3f}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _show(ax: plt.Axes, image: np.ndarray) -> None:
    ax.imshow(image.squeeze().astype(np.uint8), cmap="gray" if image.shape[-1] == 1 else None)
    ax.axis("off")


def _boxes(ax: plt.Axes, boxes: np.ndarray, names: Sequence[str], size: tuple[int, int], colour: str) -> None:
    width, height = size
    for box, name in zip(boxes, names, strict=True):
        x1, y1, x2, y2 = box * [width, height, width, height]
        ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, color=colour, lw=1))
        ax.text(x1, y1, name, fontsize=4, color="black", backgroundcolor=colour)


def plot_samples(
    task: str, sample: ArraySet, outputs: dict[str, np.ndarray], labels: Sequence[str], path: Path
) -> None:
    """Up to 8 held-out images: the truth on top (true class, true boxes in white, true trimap), the
    model's predictions below (class in red when wrong, boxes in green, predicted trimap)."""
    count = min(8, len(sample))
    rows = 1 if task == "classify" else 2
    fig, axes = plt.subplots(rows, count, figsize=(1.6 * count, 1.9 * rows), squeeze=False)
    for i in range(count):
        image = sample.images[i]
        height, width = image.shape[:2]
        top, bottom = axes[0][i], axes[-1][i]
        if task == "classify":
            _show(top, image)
            probs = outputs["probabilities"][i]
            wrong = sample.labels[i] != probs.argmax()
            top.set_title(
                f"true {labels[sample.labels[i]]}\n{labels[probs.argmax()]} {probs.max():.2f}",
                fontsize=6,
                color="red" if wrong else "black",
            )
        elif task == "detect":
            assert sample.boxes is not None
            assert sample.box_classes is not None
            _show(top, image)
            real = sample.box_classes[i] >= 0
            names = [labels[c] for c in sample.box_classes[i][real]]
            _boxes(top, sample.boxes[i][real], names, (width, height), "white")
            _show(bottom, image)
            found = decode_detections(
                outputs["boxes"][i],
                outputs["iou"][i],
                outputs["class_probabilities"][i],
                labels,
                (width, height),
            )
            names = [f"{labels[c]} {s:.2f}" for c, s in zip(found.classes, found.scores, strict=True)]
            _boxes(bottom, found.boxes, names, (width, height), "lime")
        else:
            assert sample.masks is not None
            _show(top, 0.5 * image[..., :3] + 0.5 * _TRIMAP_PAINT[sample.masks[i] + 1])
            values = outputs["probabilities"][i].argmax(-1) + 1
            _show(bottom, 0.5 * image[..., :3] + 0.5 * _TRIMAP_PAINT[values])
    if rows == 2:
        axes[0][0].set_title("truth", fontsize=7, loc="left")
        axes[1][0].set_title("predicted", fontsize=7, loc="left")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
