"""What a trained CNN does, in the course's pictures (Zeiler and Fergus 2014): its first layer's filters, the
feature maps of chosen layers for one image, and its class activation map over that image."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import keras
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from service.core.errors import ImageError
from service.core.imaging import prepare_image
from training.architectures.applications import base_of
from training.architectures.custom_objects import load_run_model
from training.cam import cam_head, class_activation_maps
from training.errors import UserError
from training.plots import figure_png
from training.reference import LOCAL_IMAGE_LIMITS

FILTERS_SHOWN = 64
MAPS_PER_LAYER = 8
FILTERS_PICTURE = "filters.png"
FEATURE_MAPS_PICTURE = "feature-maps.png"
CAM_PICTURE = "cam.png"


def model_input(model: keras.Model, data: bytes) -> np.ndarray:
    """An image file as the model's input [1, h, w, c], decoded and stretched as the service does."""
    _, height, width, channels = model.inputs[0].shape
    prepared = prepare_image(
        data, width=width, height=height, channels=channels, resize="stretch", limits=LOCAL_IMAGE_LIMITS
    )
    return prepared.pixels[np.newaxis]


def first_convolution(model: keras.Model) -> keras.layers.Conv2D | None:
    """The first Conv2D the image meets, inside a nested base too."""
    return next((layer for layer in model._flatten_layers() if type(layer) is keras.layers.Conv2D), None)


def filters_figure(layer: keras.layers.Conv2D) -> Figure:
    """Each filter of a first layer as a small picture: in colour when it reads RGB, else the mean over its
    input channels; each scaled to its own range, so a filter's pattern shows whatever its magnitude."""
    kernel = np.asarray(layer.get_weights()[0])  # [k, k, in, out]
    count = min(FILTERS_SHOWN, kernel.shape[-1])
    columns = min(16, count)
    rows = math.ceil(count / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(0.6 * columns + 0.4, 0.6 * rows + 0.6), squeeze=False)
    for index, ax in enumerate(axes.flat):
        ax.axis("off")
        if index >= count:
            continue
        weights = kernel[..., index]
        picture = weights if weights.shape[-1] == 3 else weights.mean(axis=-1)
        low, high = picture.min(), picture.max()
        ax.imshow((picture - low) / (high - low) if high > low else picture * 0, cmap="gray")
    fig.suptitle(f"{layer.name}: {count} of {kernel.shape[-1]} filters, {kernel.shape[0]}x{kernel.shape[1]}")
    fig.tight_layout()
    return fig


def feature_layers(model: keras.Model) -> list[str]:
    """The layers that end each spatial resolution, where the features are richest before they are pooled or
    strided away: the model's own, or a keras.applications base's."""
    graph, _ = _shown_graph(model)
    shaped = [layer for layer in graph.layers if _spatial(layer)]
    chosen = []
    for layer, following in zip(shaped, [*shaped[1:], None], strict=True):
        if following is None or following.output.shape[1] != layer.output.shape[1]:
            chosen.append(layer.name)
    return chosen


def _shown_graph(model: keras.Model) -> tuple[keras.Model, keras.Model | None]:
    """The graph whose layers the feature maps come from, and, when that is a nested base (a backbone
    classifier's), the model that turns the image into the base's input."""
    base = base_of(model)
    if base is None:
        return model, None
    (call,) = [node for node in base._inbound_nodes if node.input_tensors[0] is not base.input]
    return base, keras.Model(model.input, call.input_tensors[0])


def _spatial(layer: keras.layers.Layer) -> bool:
    """Whether a layer gives [N, h, w, c] in its graph (a nested model's output is in its own graph) of its
    own making (padding only frames the layer before it)."""
    if isinstance(layer, keras.layers.InputLayer | keras.Model | keras.layers.ZeroPadding2D):
        return False
    return len(layer.output.shape) == 4


def feature_maps_figure(model: keras.Model, image: np.ndarray, layer_names: Sequence[str]) -> Figure:
    """Per chosen layer, a row of the channels that respond most to this image (by mean activation), the
    image itself first."""
    graph, feed = _shown_graph(model)
    unknown = [name for name in layer_names if name not in {layer.name for layer in graph.layers}]
    if unknown:
        raise ValueError(f"no layer named {', '.join(unknown)}; among its layers are {feature_layers(model)}")
    probe = keras.Model(graph.input, [graph.get_layer(name).output for name in layer_names])
    maps = probe(image if feed is None else feed(image, training=False), training=False)
    maps = [np.asarray(values)[0] for values in (maps if isinstance(maps, list | tuple) else [maps])]
    columns = MAPS_PER_LAYER + 1
    fig, axes = plt.subplots(len(maps), columns, figsize=(1.2 * columns, 1.35 * len(maps)), squeeze=False)
    for row, (name, values) in zip(axes, zip(layer_names, maps, strict=True), strict=True):
        _show_input(row[0], image[0])
        row[0].set_title(f"{name}\n{'x'.join(map(str, values.shape))}", fontsize=6)
        strongest = np.argsort(-values.mean(axis=(0, 1)), kind="stable")[:MAPS_PER_LAYER]
        for ax, channel in zip(row[1:], strongest, strict=False):
            ax.imshow(values[..., channel], cmap="viridis")
            ax.set_title(f"channel {channel}", fontsize=6)
        for ax in row:
            ax.axis("off")
    fig.tight_layout()
    return fig


def cam_figure(model: keras.Model, image: np.ndarray, labels: Sequence[str]) -> Figure:
    """The top class's activation map, smoothed over the image, beside the image."""
    probabilities = np.asarray(model(image, training=False)).reshape(-1)
    best = int(probabilities.argmax())
    cam = class_activation_maps(model, image)[0, ..., best]
    low, high = cam.min(), cam.max()
    heat = (cam - low) / (high - low) if high > low else cam * 0
    height, width = image.shape[1:3]
    fig, (left, right) = plt.subplots(1, 2, figsize=(5, 2.8))
    _show_input(left, image[0])
    left.set_title("input", fontsize=8)
    _show_input(right, image[0])
    right.imshow(heat, cmap="inferno", alpha=0.55, extent=(0, width, height, 0), interpolation="bilinear")
    right.set_title(f"{labels[best]} {probabilities[best]:.1%}: class activation map", fontsize=8)
    for ax in (left, right):
        ax.axis("off")
    fig.tight_layout()
    return fig


def _show_input(ax: plt.Axes, pixels: np.ndarray) -> None:
    picture = np.clip(pixels, 0, 255).astype(np.uint8)
    ax.imshow(picture[..., 0] if picture.shape[-1] == 1 else picture, cmap="gray")


def pictures(
    model: keras.Model, data: bytes, labels: Sequence[str], layer_names: Sequence[str] | None = None
) -> dict[str, bytes]:
    """The pictures of one image as PNG bytes by file name: filters, feature maps and, when the model's head
    allows, its class activation map."""
    image = model_input(model, data)
    drawn = {}
    first = first_convolution(model)
    if first is not None:
        drawn[FILTERS_PICTURE] = figure_png(filters_figure(first), dpi=90)
    chosen = layer_names or feature_layers(model)
    drawn[FEATURE_MAPS_PICTURE] = figure_png(feature_maps_figure(model, image, chosen), dpi=110)
    if cam_head(model) is not None:
        drawn[CAM_PICTURE] = figure_png(cam_figure(model, image, labels), dpi=110)
    return drawn


def visualize_run(run_dir: Path, image: Path, layer_names: Sequence[str] | None, folder: Path) -> list[Path]:
    """A run's pictures of `image`, written into `folder`; returns their paths."""
    labels = json.loads((run_dir / "run.json").read_text())["labels"]
    try:
        drawn = pictures(load_run_model(run_dir), image.read_bytes(), labels, layer_names)
    except ImageError as exc:
        raise UserError(f"{image}: {exc.message}") from None
    except ValueError as exc:
        raise UserError(str(exc)) from None
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in drawn.items():
        (folder / name).write_bytes(content)
    return [folder / name for name in drawn]
