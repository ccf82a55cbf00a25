"""Train one task: data -> model -> fit (early stopping, checkpoints) -> held-out metrics -> plots."""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from training import architectures
from training.architectures.yolo import GridDetectionLoss, SplitDetections
from training.data import pipelines
from training.data.arrays import ArraySet, train_val_split
from training.data.layouts import DIGITS, open_dataset
from training.data.pipelines import Augment
from training.evaluate.evaluate import evaluate_predictor, predict_all
from training.plots import plot_curves, plot_samples

DEFAULT_ARCH = {"classify": "small_cnn", "detect": "grid", "segment": "unet"}


@dataclass
class TrainConfig:
    """Everything that decides a training run; saved as run.json beside the model."""

    task: str
    data: str
    run_dir: str
    arch: str = ""
    size: int = 64
    epochs: int = 20
    batch: int = 32
    learning_rate: float = 2e-3
    patience: int = 5
    early_stop_after: int | None = None
    seed: int = 0
    val_fraction: float = 0.1
    weights: str | None = None
    augment: bool = True
    init_from: str | None = None
    freeze: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.arch = self.arch or ("lenet5" if self.data == DIGITS else DEFAULT_ARCH[self.task])
        if self.early_stop_after is None:
            # While the learning rate is high, BatchNorm's moving statistics trail the weights, so validation
            # loss can climb for epochs before it falls; judged then, it kept a segmenter's first epoch.
            self.early_stop_after = self.epochs // 2

    @property
    def channels(self) -> int:
        return 1 if self.data == DIGITS else 3


@dataclass(frozen=True)
class TaskData:
    """Labels and the three splits of a run; `test` is only ever scored, never fitted or early-stopped on."""

    labels: tuple[str, ...]
    train: ArraySet
    val: ArraySet
    test: ArraySet
    dataset_name: str
    skipped: int = 0  # images that would not decode and were left out


def load_task_data(config: TrainConfig) -> TaskData:
    """The run's data, whatever its layout (training.data.layouts); validation is the set's own split when
    it has one, else a seeded part of trainval."""
    splits = open_dataset(config.data, config.task, config.size, config.channels, config.seed)
    if splits.val is not None:
        train, val = splits.trainval, splits.val
    else:
        train, val = train_val_split(splits.trainval, config.val_fraction, config.seed)
    return TaskData(
        labels=splits.labels,
        train=train,
        val=val,
        test=splits.test,
        dataset_name=splits.name,
        skipped=splits.skipped,
    )


def build_model(config: TrainConfig, num_classes: int) -> keras.Model:
    shape = (config.size, config.size, config.channels)
    if config.task == "classify":
        return architectures.build_classifier(config.arch, shape, num_classes, weights=config.weights)
    if config.task == "detect":
        return architectures.DETECTORS[config.arch](shape, num_classes)
    return architectures.SEGMENTERS[config.arch](shape)


def contract_model(model: keras.Model, task: str) -> keras.Model:
    """The trained model with its outputs named by contract role (what export converts)."""
    if task == "detect":
        return keras.Model(model.input, SplitDetections(name="split")(model.outputs[0]))
    return keras.Model(model.input, {"probabilities": model.outputs[0]})


def weighted_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The model's layers that hold weights, in order: the unit that transfer and freezing count in."""
    return [layer for layer in model.layers if layer.weights]


def transfer_weights(source: keras.Model, target: keras.Model) -> int:
    """Copy weights layer by layer, in order, while layer types and weight shapes agree; returns the count.

    Backbones built from the same encoder code (U-Net encoder -> classifier or detector) line up this way.
    """
    copied = 0
    for src, dst in zip(weighted_layers(source), weighted_layers(target), strict=False):
        same = type(src) is type(dst) and [w.shape for w in src.weights] == [w.shape for w in dst.weights]
        if not same:
            break
        dst.set_weights(src.get_weights())
        copied += 1
    return copied


def freeze_layers(model: keras.Model, count: int) -> int:
    """Stop training the first `count` layers that have weights; returns how many were frozen.

    Early layers of a transferred backbone hold generic edge and texture filters; freezing them also skips
    their backward pass, which is most of the cost at full resolution.
    """
    layers = weighted_layers(model)[:count]
    for layer in layers:
        layer.trainable = False
    return len(layers)


def keras_predictor(model: keras.Model) -> Any:
    def predict(images: np.ndarray) -> dict[str, np.ndarray]:
        return {role: np.asarray(v) for role, v in model(images, training=False).items()}

    return predict


def _datasets(config: TrainConfig, data: TaskData, grid: int) -> tuple[tf.data.Dataset, tf.data.Dataset]:
    # Digits are neither mirror- nor rotation-symmetric; the synthetic shapes are both.
    symmetric = config.data != DIGITS
    augment: Augment | None = Augment(flip=symmetric, rotate=symmetric, min_scale=0.85 if symmetric else 0.9)
    if not config.augment:
        augment = None
    n_classes = len(data.labels)
    if config.task == "classify":
        build = pipelines.classify_dataset
        return (
            build(data.train, config.batch, augment, shuffle=True, seed=config.seed),
            build(data.val, config.batch),
        )
    if config.task == "detect":
        return (
            pipelines.detect_dataset(
                data.train, config.batch, grid, n_classes, augment, shuffle=True, seed=config.seed
            ),
            pipelines.detect_dataset(data.val, config.batch, grid, n_classes),
        )
    return (
        pipelines.segment_dataset(data.train, config.batch, augment, shuffle=True, seed=config.seed),
        pipelines.segment_dataset(data.val, config.batch),
    )


def _compile(model: keras.Model, config: TrainConfig, steps: int) -> None:
    schedule = keras.optimizers.schedules.CosineDecay(
        config.learning_rate, decay_steps=steps * config.epochs, alpha=0.05
    )
    optimizer = keras.optimizers.Adam(schedule)
    if config.task == "detect":
        model.compile(optimizer=optimizer, loss=GridDetectionLoss())
    else:
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])


class TqdmProgress(keras.callbacks.Callback):
    """A tqdm bar per epoch over its batches, and one summary line per epoch."""

    def __init__(self, epochs: int, steps: int) -> None:
        super().__init__()
        self.epochs, self.steps = epochs, steps
        self.bar: tqdm | None = None

    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self.bar = tqdm(
            total=self.steps, desc=f"epoch {epoch + 1}/{self.epochs}", leave=False, unit="batch", disable=None
        )

    def on_train_batch_end(self, batch: int, logs: dict[str, float] | None = None) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{(logs or {}).get('loss', math.nan):.4f}")

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        if self.bar is not None:
            self.bar.close()
        summary = " ".join(f"{k}={v:.4f}" for k, v in (logs or {}).items() if k != "learning_rate")
        tqdm.write(f"epoch {epoch + 1}/{self.epochs} {summary}")
        sys.stdout.flush()


def early_stopping(config: TrainConfig) -> keras.callbacks.EarlyStopping:
    """Stops on validation loss and keeps the best weights, judging only after the warm-up epochs."""
    return keras.callbacks.EarlyStopping(
        patience=config.patience, restore_best_weights=True, start_from_epoch=config.early_stop_after or 0
    )


def train(config: TrainConfig) -> dict[str, Any]:
    """Fit, evaluate on the held-out test split, and write model.keras, run.json, metrics.json and PNGs."""
    run_dir = Path(config.run_dir)
    keras.utils.set_random_seed(config.seed)
    data = load_task_data(config)
    # Only once the data has been read: a run that fails on its data leaves no empty directory behind.
    run_dir.mkdir(parents=True, exist_ok=True)
    model = build_model(config, len(data.labels))
    if config.init_from:
        source = keras.models.load_model(Path(config.init_from) / "model.keras", compile=False)
        copied = transfer_weights(source, model)
        tqdm.write(f"initialised {copied} layers from {config.init_from}")
        frozen = freeze_layers(model, min(config.freeze, copied))
        if frozen:
            tqdm.write(f"froze the first {frozen} of them")
    grid = int(model.outputs[0].shape[1] ** 0.5) if config.task == "detect" else 0
    train_ds, val_ds = _datasets(config, data, grid)
    steps = math.ceil(len(data.train) / config.batch)
    _compile(model, config, steps)
    stopping = early_stopping(config)
    callbacks = [
        stopping,
        keras.callbacks.ModelCheckpoint(run_dir / "checkpoint.keras", save_best_only=True),
        TqdmProgress(config.epochs, steps),
    ]
    started = time.perf_counter()
    history = model.fit(
        train_ds, validation_data=val_ds, epochs=config.epochs, callbacks=callbacks, verbose=0, shuffle=False
    )
    seconds = time.perf_counter() - started
    model.save(run_dir / "model.keras")
    exported = contract_model(model, config.task)
    metrics = evaluate_predictor(keras_predictor(exported), config.task, data.test, data.labels)
    metrics.update(dataset=data.dataset_name, split="test", images=len(data.test))
    if data.skipped:
        tqdm.write(f"skipped {data.skipped} images that could not be decoded (each named above)")
    run_info = {
        "config": asdict(config),
        "labels": list(data.labels),
        "dataset": data.dataset_name,
        "epochs_run": len(history.history["loss"]),
        "weights_epoch": kept_epoch(stopping, len(history.history["loss"])),
        "train_images": len(data.train),
        "val_images": len(data.val),
        "skipped_images": data.skipped,
        "train_seconds": round(seconds, 1),
    }
    _write_json(run_dir / "run.json", run_info)
    _write_json(run_dir / "history.json", {k: [float(v) for v in vs] for k, vs in history.history.items()})
    _write_json(run_dir / "metrics.json", metrics)
    plot_curves(history.history, run_dir / "curves.png")
    sample = data.test.images[:8]
    plot_samples(
        config.task,
        sample,
        predict_all(keras_predictor(exported), sample),
        data.labels,
        run_dir / "samples.png",
        truth=data.test.labels[:8],
    )
    return metrics


def kept_epoch(stopping: keras.callbacks.EarlyStopping, epochs_run: int) -> int:
    """The 1-based epoch whose weights the model ends with: the best judged one, else the last."""
    return stopping.best_epoch + 1 if stopping.best_weights is not None else epochs_run


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, default=float) + "\n")


def evaluate_run(run_dir: Path) -> dict[str, Any]:
    """Reload a run's saved model and score it again on the held-out test split."""
    run = json.loads((run_dir / "run.json").read_text())
    config = TrainConfig(**run["config"])
    model = contract_model(keras.models.load_model(run_dir / "model.keras", compile=False), config.task)
    data = load_task_data(config)
    metrics = evaluate_predictor(keras_predictor(model), config.task, data.test, data.labels)
    metrics.update(dataset=data.dataset_name, split="test", images=len(data.test))
    return metrics
