"""PNG pictures for people: training curves, sample predictions beside the truth, a confusion matrix, one
image under the run's augmentation, and the drift reference an exported model carries."""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator
from PIL import Image

from service.core.contract import TRIMAP_VALUES
from service.core.reference import Histogram, Reference, shares
from service.core.tasks.segment import TRIMAP_COLORS
from training.data.arrays import ArraySet
from training.evaluate.evaluate import BEST_CANDIDATE, SERVED_OPTIONS, decode_detections
from training.evaluate.metrics import confusion_matrix

# Row = trimap value, as `/segment?style=color` paints it.
_TRIMAP_PAINT = np.array(TRIMAP_COLORS, np.float32)
SAMPLES = 8


def plot_curves(
    history: dict[str, list[float]],
    path: Path,
    kept_epoch: int | None = None,
    phase_starts: Sequence[int] = (),
) -> None:
    """Loss and each tracked metric per epoch, as `curves_figure` draws them, to `path`."""
    _save(curves_figure(history, kept_epoch, phase_starts), path, dpi=72)


def curves_figure(
    history: dict[str, list[float]], kept_epoch: int | None = None, phase_starts: Sequence[int] = ()
) -> Figure:
    """Loss and each tracked metric per epoch (1-based, whole-number ticks), training against validation, with
    the epoch whose weights were kept marked and a line where fine-tuning began. Each epoch is a marker, so a
    one-epoch run shows its point rather than empty axes."""
    keys = [k for k in history if not k.startswith("val_") and k != "learning_rate"]
    fig, axes = plt.subplots(1, len(keys), figsize=(3.6 * len(keys), 3), squeeze=False)
    for ax, key in zip(axes[0], keys, strict=True):
        epochs = np.arange(1, len(history[key]) + 1)
        ax.plot(epochs, history[key], marker="o", ms=3, label="train")
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], marker="o", ms=3, label="validation")
        for start in phase_starts:
            ax.axvline(start + 0.5, color="grey", ls="--", lw=0.8, label="fine-tuning starts")
        if kept_epoch:
            ax.axvline(kept_epoch, color="green", ls=":", lw=1, label=f"kept: epoch {kept_epoch}")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.set_xlim(0.5, len(epochs) + 0.5)
        ax.set_title(key)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _save(fig: Figure, path: Path, dpi: int) -> None:
    path.write_bytes(figure_png(fig, dpi))


def figure_png(fig: Figure, dpi: int) -> bytes:
    """Drawn with a palette of 256 colours: pictures of textured scenes shrink about four times (a 3x3
    augment.png from 248 KB to 59 KB), and model cards carry them."""
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=dpi)
    plt.close(fig)
    picture = Image.open(buffer).convert("RGB")
    written = io.BytesIO()
    picture.quantize(256, method=Image.Quantize.MEDIANCUT).save(written, format="PNG", optimize=True)
    return written.getvalue()


def reference_png(reference: Reference, labels: Sequence[str]) -> bytes:
    """The drift reference a model file carries, one panel per signal: a number signal as the density of its
    values between the cuts (the reference has none outside them), a label signal as each label's share.
    The confidence panel marks the unfamiliar line."""
    names = list(reference.signals)
    columns = min(3, len(names))
    rows = math.ceil(len(names) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.4 * columns, 2.5 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        signal = reference.signals[name]
        if isinstance(signal, Histogram):
            _density(ax, signal)
        else:
            ax.bar(range(len(labels)), shares(signal.counts), color="#4363d8")
            ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=7)
            ax.set_ylabel("share", fontsize=7)
        if name == "confidence":
            ax.axvline(reference.low_confidence, color="#e6194b", linestyle="--", linewidth=1)
            ax.set_title(f"confidence (unfamiliar under {reference.low_confidence:.3g})", fontsize=8)
        else:
            ax.set_title(name, fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in axes.flat[len(names) :]:
        ax.axis("off")
    fig.suptitle(
        f"drift reference: {reference.images} images of {textwrap.shorten(reference.source, 60)}", fontsize=9
    )
    fig.tight_layout()
    return figure_png(fig, dpi=80)


def _density(ax: plt.Axes, signal: Histogram) -> None:
    """Bars between the cuts, each as high as its share over its width, so that uneven bins read right."""
    cuts = np.asarray(signal.cuts)
    inner = np.asarray(signal.counts[1:-1], np.float64)
    widths = np.diff(cuts)
    if not len(widths):
        return
    heights = inner / max(inner.sum(), 1) / np.maximum(widths, 1e-12)
    ax.bar(cuts[:-1], heights, width=widths, align="edge", color="#4363d8", edgecolor="white", linewidth=0.5)
    ax.set_ylabel("share per unit", fontsize=7)


def sample_indices(truth: np.ndarray, predicted: np.ndarray, count: int = SAMPLES) -> np.ndarray:
    """Which held-out images a classifier's samples show: taken class by class in turn, each class's mistakes
    before its hits, so every class appears when there are enough images; then the mistakes first."""
    by_class = [
        [*np.flatnonzero((truth == c) & (predicted != c)), *np.flatnonzero((truth == c) & (predicted == c))]
        for c in np.unique(truth)
    ]
    picked: list[int] = []
    for rank in range(max((len(queue) for queue in by_class), default=0)):
        picked += [queue[rank] for queue in by_class if rank < len(queue)]
    chosen = picked[:count]
    return np.array(sorted(chosen, key=lambda i: truth[i] == predicted[i]), dtype=int)


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
    _save(fig, path, dpi=80)


def _show(ax: plt.Axes, image: np.ndarray) -> None:
    ax.imshow(image.squeeze().astype(np.uint8), cmap="gray" if image.shape[-1] == 1 else None)
    ax.axis("off")


def _boxes(
    ax: plt.Axes,
    boxes: np.ndarray,
    names: Sequence[str],
    size: tuple[int, int],
    colour: str,
    style: str = "-",
) -> None:
    """Each box outlined, its label written just inside its top-left corner and clipped to the image, so a
    box at the edge keeps its label on the picture."""
    width, height = size
    for box, name in zip(boxes, names, strict=True):
        x1, y1, x2, y2 = np.clip(box * [width, height, width, height], 0, [width, height, width, height])
        ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, color=colour, lw=1.2, ls=style))
        ax.text(
            x1 + 1, y1 + 1, name, fontsize=6, va="top", color="black", backgroundcolor=colour, clip_on=True
        )


def _overlay(image: np.ndarray, trimap: np.ndarray) -> np.ndarray:
    """The image half-covered by the trimap's colours (values 1..3), as `/segment?style=color` paints them."""
    return 0.5 * image[..., :3] + 0.5 * _TRIMAP_PAINT[trimap]


def _show_truth(ax: plt.Axes, sample: ArraySet, i: int, labels: Sequence[str]) -> None:
    """Image `i` of `sample` with what it holds: its true trimap painted over, or its true boxes in white."""
    image = sample.images[i]
    height, width = image.shape[:2]
    _show(ax, image if sample.masks is None else _overlay(image, sample.masks[i] + 1))
    if sample.boxes is not None and sample.box_classes is not None:
        real = sample.box_classes[i] >= 0
        names = [labels[c] for c in sample.box_classes[i][real]]
        _boxes(ax, sample.boxes[i][real], names, (width, height), "white")


def _detect_legend() -> list[Patch]:
    best = f"best candidate, under the served {SERVED_OPTIONS.score_threshold}"
    return [
        Patch(fc="white", ec="black", lw=0.5, label="truth"),
        Patch(fc="none", ec="lime", label="detected"),
        Patch(fc="none", ec="orange", ls="--", label=best),
    ]


def _trimap_legend() -> list[Patch]:
    return [Patch(color=_TRIMAP_PAINT[value] / 255, label=label) for label, value in TRIMAP_VALUES.items()]


def plot_samples(
    task: str, sample: ArraySet, outputs: dict[str, np.ndarray], labels: Sequence[str], path: Path
) -> None:
    """Up to 8 held-out images: the truth on top (true class, true boxes in white, true trimap), the
    model's predictions below (class in red when wrong; boxes in green, or the best candidate dashed in orange
    with its score when none reaches the served threshold; predicted trimap, with a legend)."""
    count = min(SAMPLES, len(sample))
    rows = 1 if task == "classify" else 2
    fig, axes = plt.subplots(rows, count, figsize=(1.6 * count, 1.9 * rows), squeeze=False)
    for i in range(count):
        image = sample.images[i]
        height, width = image.shape[:2]
        top, bottom = axes[0][i], axes[-1][i]
        _show_truth(top, sample, i, labels)
        if task == "classify":
            probs = outputs["probabilities"][i]
            wrong = sample.labels[i] != probs.argmax()
            top.set_title(
                f"true {labels[sample.labels[i]]}\n{labels[probs.argmax()]} {probs.max():.2f}",
                fontsize=6,
                color="red" if wrong else "black",
            )
        elif task == "detect":
            _show(bottom, image)
            candidates = (outputs["boxes"][i], outputs["iou"][i], outputs["class_probabilities"][i])
            found = decode_detections(*candidates, labels, (width, height))
            colour, style = "lime", "-"
            if not len(found.boxes):
                found = decode_detections(*candidates, labels, (width, height), BEST_CANDIDATE)
                colour, style = "orange", "--"
            names = [f"{labels[c]} {s:.2f}" for c, s in zip(found.classes, found.scores, strict=True)]
            _boxes(bottom, found.boxes, names, (width, height), colour, style)
        else:
            _show(bottom, _overlay(image, outputs["probabilities"][i].argmax(-1) + 1))
    if rows == 2:
        axes[0][0].set_title("truth", fontsize=7, loc="left")
        axes[1][0].set_title("predicted", fontsize=7, loc="left")
    if task != "classify":
        legend = _detect_legend() if task == "detect" else _trimap_legend()
        fig.legend(handles=legend, loc="lower center", ncol=len(legend), fontsize=6, frameon=False)
    fig.tight_layout(rect=(0, 0.06 if task != "classify" else 0, 1, 1))
    _save(fig, path, dpi=80)


def plot_augmentation(
    task: str, original: ArraySet, drawn: ArraySet, labels: Sequence[str], said: str, path: Path
) -> None:
    """One training image as it is, then under each draw of the run's augmentation, with its boxes or trimap
    moved alike; `said` (the transforms in words) is the title."""
    pictures = [original.subset(np.arange(1))] + [
        drawn.subset(np.arange(i, i + 1)) for i in range(len(drawn))
    ]
    columns = 3
    rows = math.ceil(len(pictures) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.0 * columns, 2.1 * rows + 0.5), squeeze=False)
    for ax in axes.flat[len(pictures) :]:
        ax.axis("off")
    for i, (ax, picture) in enumerate(zip(axes.flat, pictures, strict=False)):
        _show_truth(ax, picture, 0, labels)
        ax.set_title("as it is" if i == 0 else f"draw {i}", fontsize=7)
    fig.suptitle(textwrap.fill(f"augmentation: {said}", 90), fontsize=7)
    if task == "segment":
        legend = _trimap_legend()
        fig.legend(handles=legend, loc="lower center", ncol=len(legend), fontsize=6, frameon=False)
    fig.tight_layout(rect=(0, 0.04 if task == "segment" else 0, 1, 1))
    _save(fig, path, dpi=80)
