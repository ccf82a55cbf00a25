"""PNG pictures for people: training curves and sample predictions (boxes drawn, masks overlaid)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from service.core.tasks.segment import TRIMAP_COLORS
from training.evaluate.evaluate import decode_detections

# Row = trimap value, as `/segment?style=color` paints it.
_TRIMAP_PAINT = np.array(TRIMAP_COLORS, np.float32)


def plot_curves(history: dict[str, list[float]], path: Path) -> None:
    """Loss and each tracked metric per epoch, training against validation."""
    keys = [k for k in history if not k.startswith("val_") and k != "learning_rate"]
    fig, axes = plt.subplots(1, len(keys), figsize=(3.6 * len(keys), 3), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        ax.plot(history[key], label="train")
        if f"val_{key}" in history:
            ax.plot(history[f"val_{key}"], label="validation")
        ax.set_title(key)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=72)
    plt.close(fig)


def _show(ax: plt.Axes, image: np.ndarray) -> None:
    ax.imshow(image.squeeze().astype(np.uint8), cmap="gray" if image.shape[-1] == 1 else None)
    ax.axis("off")


def plot_samples(
    task: str,
    images: np.ndarray,
    outputs: dict[str, np.ndarray],
    labels: Sequence[str],
    path: Path,
    truth: np.ndarray | None = None,
) -> None:
    """Up to 8 held-out images with the model's predictions drawn on them."""
    count = min(8, len(images))
    fig, axes = plt.subplots(1, count, figsize=(1.6 * count, 1.9), squeeze=False)
    for i, ax in enumerate(axes[0]):
        image = images[i]
        if task == "classify":
            _show(ax, image)
            probs = outputs["probabilities"][i]
            wrong = truth is not None and truth[i] != probs.argmax()
            ax.set_title(
                f"{labels[probs.argmax()]} {probs.max():.2f}", fontsize=7, color="red" if wrong else "black"
            )
        elif task == "detect":
            _show(ax, image)
            height, width = image.shape[:2]
            found = decode_detections(
                outputs["boxes"][i],
                outputs["iou"][i],
                outputs["class_probabilities"][i],
                labels,
                (width, height),
            )
            for box, cls, score in zip(found.boxes, found.classes, found.scores, strict=True):
                x1, y1, x2, y2 = box * [width, height, width, height]
                ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, color="lime", lw=1))
                ax.text(
                    x1, y1, f"{labels[cls]} {score:.2f}", fontsize=4, color="black", backgroundcolor="lime"
                )
        else:
            values = outputs["probabilities"][i].argmax(-1) + 1
            blended = 0.5 * image[..., :3] + 0.5 * _TRIMAP_PAINT[values]
            _show(ax, blended)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
