"""Train one task: data -> model -> fit in phases (early stopping, checkpoints) -> BatchNorm statistics ->
held-out metrics -> run files and pictures."""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from training import batchnorm
from training.architectures import architecture
from training.architectures.applications import base_of
from training.architectures.custom_objects import load_run_model
from training.architectures.localize import LocalizationLoss
from training.architectures.yolo import GridDetectionLoss, SplitDetections
from training.augmentation import Augmentation
from training.cam import HEATMAP, heatmap_output
from training.config import TrainConfig
from training.data import pipelines
from training.data.arrays import ArraySet, train_val_split
from training.data.layouts import open_dataset
from training.errors import DatasetError
from training.evaluate import usefulness
from training.evaluate.evaluate import HEADLINE, evaluate_outputs, predict_all
from training.plots import (
    SAMPLES,
    plot_augmentation,
    plot_confusion,
    plot_curves,
    plot_samples,
    sample_indices,
)

# Without a terminal (a log file, a notebook's `!python`) there is no bar: a line at least this often says
# where an epoch is, so a run never looks stuck.
HEARTBEAT_SECONDS = 10.0


def say(line: str) -> None:
    """One progress line, written at once whether or not stdout is a terminal."""
    tqdm.write(line)
    sys.stdout.flush()


@dataclass(frozen=True)
class TaskData:
    """Labels and the three splits of a run; `test` is only ever scored, never fitted or early-stopped on."""

    labels: tuple[str, ...]
    train: ArraySet
    val: ArraySet
    test: ArraySet
    dataset_name: str
    skipped: int = 0  # images that would not decode and were left out
    held_out: tuple[Path | bytes, ...] = ()  # the test split as uploads (training.data.layouts.Splits)


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
        held_out=splits.held_out,
    )


def build_model(config: TrainConfig, num_classes: int) -> keras.Model:
    arch = architecture(config.task, config.arch)
    options = {"weights": config.weights} if arch.backbone else {}
    return arch.build((config.size, config.size, config.channels), num_classes, **options)


def contract_model(model: keras.Model, task: str, heatmap: bool = False) -> keras.Model:
    """The trained model with its outputs named by contract role (what export converts); with `heatmap`, a
    classifier whose head allows it also gives its class activation maps (training/cam.py)."""
    if task == "detect":
        return keras.Model(model.input, SplitDetections(name="split")(model.outputs[0]))
    outputs = {"probabilities": model.outputs[0]}
    maps = heatmap_output(model) if heatmap and task == "classify" else None
    if maps is not None:
        outputs[HEATMAP] = maps
    return keras.Model(model.input, outputs)


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


def augmentation(config: TrainConfig) -> Augmentation | None:
    """The random transforms a run's training images get, or None when every one is off."""
    assert config.augmentation is not None
    return config.augmentation if config.augmentation.active else None


def _datasets(config: TrainConfig, data: TaskData, grid: int) -> tuple[tf.data.Dataset, tf.data.Dataset]:
    augment = augmentation(config)
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


def _loss(config: TrainConfig) -> keras.losses.Loss | str:
    if config.task != "detect":
        return "sparse_categorical_crossentropy"
    one_object = architecture(config.task, config.arch).one_object
    return LocalizationLoss(*config.loss_weights) if one_object else GridDetectionLoss()


def _compile(model: keras.Model, config: TrainConfig, learning_rate: float, steps: int) -> None:
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=steps, alpha=0.05)
    metrics = [] if config.task == "detect" else ["accuracy"]
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=_loss(config), metrics=metrics)


class TqdmProgress(keras.callbacks.Callback):
    """A tqdm bar per epoch over its batches on a terminal, else a line every `heartbeat` seconds; and one
    summary line per epoch."""

    def __init__(
        self, epochs: int, steps: int, phase: str = "", heartbeat: float = HEARTBEAT_SECONDS
    ) -> None:
        super().__init__()
        self.epochs, self.steps, self.phase = epochs, steps, f"{phase} " if phase else ""
        self.heartbeat = heartbeat
        self.bar: tqdm | None = None
        self.epoch = 0
        self.last_line = time.monotonic()

    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self.epoch = epoch
        self.bar = tqdm(
            total=self.steps,
            desc=f"{self.phase}epoch {epoch + 1}/{self.epochs}",
            leave=False,
            unit="batch",
            disable=None,
        )

    def on_train_batch_end(self, batch: int, logs: dict[str, float] | None = None) -> None:
        loss = f"loss {(logs or {}).get('loss', math.nan):.4f}"
        if self.bar is not None and not self.bar.disable:
            self.bar.update(1)
            self.bar.set_postfix_str(loss)
        else:
            self._beat(f"batch {batch + 1}/{self.steps}, {loss}")

    def on_test_batch_end(self, batch: int, logs: dict[str, float] | None = None) -> None:
        if self.bar is None or self.bar.disable:
            self._beat(f"validating, batch {batch + 1}")

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        if self.bar is not None:
            self.bar.close()
        summary = " ".join(f"{k}={v:.4f}" for k, v in (logs or {}).items() if k != "learning_rate")
        say(f"{self.phase}epoch {epoch + 1}/{self.epochs} {summary}")
        self.last_line = time.monotonic()

    def _beat(self, where: str) -> None:
        if time.monotonic() - self.last_line >= self.heartbeat:
            say(f"{self.phase}epoch {self.epoch + 1}/{self.epochs}: {where}")
            self.last_line = time.monotonic()


def early_stopping(
    config: TrainConfig, first_epoch: int = 0, epochs: int | None = None
) -> keras.callbacks.EarlyStopping:
    """Stops on validation loss and keeps the best weights, judging only after a phase's warm-up epochs
    (`early_stop_after` for the first phase, half of a fine-tuning phase)."""
    warm_up = (config.early_stop_after or 0) if epochs is None else epochs // 2
    return keras.callbacks.EarlyStopping(
        patience=config.patience, restore_best_weights=True, start_from_epoch=first_epoch + warm_up
    )


@dataclass(frozen=True)
class Phase:
    """One `fit` of a run: the whole model (no name), or for the two-phase recipe the head alone ("head")
    and then the base's top layers with it ("fine-tune")."""

    name: str
    epochs: int
    learning_rate: float


@dataclass
class Fitted:
    """The curves of every phase end to end, the 1-based epoch whose weights were kept, and the time."""

    history: dict[str, list[float]]
    kept_epoch: int
    phase_starts: list[int]
    seconds: float


def phases(config: TrainConfig) -> list[Phase]:
    if not config.fine_tune_epochs:
        return [Phase("", config.epochs, config.learning_rate)]
    return [
        Phase("head", config.epochs, config.learning_rate),
        Phase("fine-tune", config.fine_tune_epochs, config.tune_lr),
    ]


def set_phase(model: keras.Model, phase: Phase, unfreeze: int | None) -> None:
    """The course's recipe: the base frozen while the head learns, then its top `unfreeze` layers (all by
    default) trained with the rest."""
    base = base_of(model)
    if base is None or not phase.name:
        return
    base.trainable = phase.name == "fine-tune"
    if base.trainable and unfreeze is not None:
        layers = weighted_layers(base)
        for layer in layers[: max(0, len(layers) - unfreeze)]:
            layer.trainable = False
    trainable = sum(1 for layer in weighted_layers(base) if layer.trainable)
    say(f"{phase.name}: {trainable} of the base's {len(weighted_layers(base))} layers train")


def fit(
    model: keras.Model,
    config: TrainConfig,
    datasets: tuple[tf.data.Dataset, tf.data.Dataset],
    steps: int,
    run_dir: Path,
) -> Fitted:
    """Every phase in turn, each with its own learning-rate schedule and early stopping."""
    plan = phases(config)
    total = sum(phase.epochs for phase in plan)
    batchnorm.fit_momentum(model, steps * total)
    history: dict[str, list[float]] = {}
    first, kept, starts = 0, 0, []
    started = time.perf_counter()
    for phase in plan:
        set_phase(model, phase, config.unfreeze)
        _compile(model, config, phase.learning_rate, steps * phase.epochs)
        stopping = early_stopping(config, first, phase.epochs if phase.name == "fine-tune" else None)
        callbacks = [
            stopping,
            keras.callbacks.ModelCheckpoint(run_dir / "checkpoint.keras", save_best_only=True),
            TqdmProgress(total, steps, phase.name),
        ]
        done = model.fit(
            datasets[0],
            validation_data=datasets[1],
            initial_epoch=first,
            epochs=first + phase.epochs,
            callbacks=callbacks,
            verbose=0,
            shuffle=False,
        ).history
        for key, values in done.items():
            history.setdefault(key, []).extend(values)
        starts.append(first)
        kept = kept_epoch(stopping, first + len(done["loss"]))
        first += len(done["loss"])
    return Fitted(history, kept, starts[1:], time.perf_counter() - started)


def train(config: TrainConfig) -> dict[str, Any]:
    """Fit, evaluate on the held-out test split, and write model.keras, run.json, metrics.json and PNGs."""
    run_dir = Path(config.run_dir)
    keras.utils.set_random_seed(config.seed)
    say(f"reading and decoding {config.data} at {config.size} px")
    data = load_task_data(config)
    say(f"read {len(data.train)} training, {len(data.val)} validation and {len(data.test)} test images")
    if architecture(config.task, config.arch).one_object:
        refuse_several_objects(config.arch, data)
    # Only once the data has been read: a run that fails on its data leaves no empty directory behind.
    run_dir.mkdir(parents=True, exist_ok=True)
    model = build_model(config, len(data.labels))
    initialise_from_run(model, config)
    grid = int(model.outputs[0].shape[1] ** 0.5) if config.task == "detect" else 0
    steps = math.ceil(len(data.train) / config.batch)
    say(f"training {config.arch}: up to {sum(p.epochs for p in phases(config))} epochs of {steps} batches")
    say(f"augmentation: {config.augmentation.describe()}")
    fitted = fit(model, config, _datasets(config, data, grid), steps, run_dir)
    say("setting the BatchNorm statistics from the training images")
    batchnorm.recalibrate(model, data.train.images, config.batch)
    model.save(run_dir / "model.keras")
    exported = contract_model(model, config.task)
    say(f"scoring the {len(data.test)} held-out test images")
    outputs = predict_all(keras_predictor(exported), data.test.images)
    metrics = score(exported, outputs, config, data)
    if data.skipped:
        say(f"skipped {data.skipped} images that could not be decoded (each named above)")
    write_run(run_dir, config, data, fitted, metrics)
    say("drawing the curves and samples")
    draw_run(run_dir, config, data, fitted, outputs)
    return metrics


def refuse_several_objects(arch: str, data: TaskData) -> None:
    """A localiser learns one object per image: a set with images of none or several is refused before any
    training, rather than failing at its scoring."""
    counts = [
        np.sum(split.box_classes >= 0, axis=1)
        for split in (data.train, data.val, data.test)
        if split.box_classes is not None and len(split)
    ]
    every = np.concatenate(counts) if counts else np.zeros(0, int)
    others = int(np.sum(every != 1))
    if others:
        raise DatasetError(
            f"{arch} learns one object per image, but {others} of {len(every)} images hold none or several "
            f"(up to {int(every.max())}); write single-object scenes with `python -m training synth "
            "--max-objects 1`, or train a grid detector (--arch grid)"
        )


def finished_line(run_dir: Path, metrics: dict[str, Any]) -> str:
    """The run's last line: where it is, which epoch's weights it kept, and its held-out headline metric."""
    run = json.loads((run_dir / "run.json").read_text())
    headline = HEADLINE[run["config"]["task"]][0]
    verdict = " (of no use: see the warnings above)" if metrics.get("warnings") else ""
    return (
        f"done: {run_dir}, kept epoch {run['weights_epoch']} of {run['epochs_run']}, held-out {headline} "
        f"{metrics[headline]:.3f}{verdict}"
    )


def initialise_from_run(model: keras.Model, config: TrainConfig) -> None:
    """With --init-from: copy the layers that line up from that run's model, and freeze the first --freeze."""
    if not config.init_from:
        return
    source = load_run_model(Path(config.init_from))
    copied = transfer_weights(source, model)
    say(f"initialised {copied} layers from {config.init_from}")
    frozen = freeze_layers(model, min(config.freeze, copied))
    if frozen:
        say(f"froze the first {frozen} of them")


def score(
    exported: keras.Model, outputs: dict[str, np.ndarray], config: TrainConfig, data: TaskData
) -> dict[str, Any]:
    """Held-out metrics of the inference-mode `outputs`, and the BatchNorm check beside them."""
    metrics = evaluate_outputs(config.task, outputs, data.test, data.labels)
    check = batchnorm_check(exported, config, data, metrics)
    if check:
        metrics["batchnorm"] = check
    useless = usefulness.problems(config.task, outputs, data.test, data.labels, metrics)
    for problem in useless:
        say(f"WARNING: this model is of no use: {problem}")
    if useless:
        metrics["warnings"] = useless
    metrics.update(dataset=data.dataset_name, split="test", images=len(data.test))
    return metrics


def batchnorm_check(
    exported: keras.Model, config: TrainConfig, data: TaskData, metrics: dict[str, Any]
) -> dict[str, float] | None:
    """The headline metric again with batch statistics; a warning when it and inference mode disagree."""
    if not batchnorm.normalisations(exported) or not len(data.test):
        return None
    headline = HEADLINE[config.task][0]
    outputs: dict[str, np.ndarray] = {}
    with batchnorm.batch_statistics(exported):
        for chunk in batchnorm.even_batches(len(data.test), config.batch, seed=config.seed):
            for role, value in exported(data.test.images[chunk], training=True).items():
                outputs.setdefault(role, np.zeros((len(data.test), *value.shape[1:]), np.float32))[chunk] = (
                    value
                )
    batch = evaluate_outputs(config.task, outputs, data.test, data.labels)[headline]
    check = {f"inference_{headline}": metrics[headline], f"batch_statistics_{headline}": batch}
    if abs(metrics[headline] - batch) > batchnorm.AGREEMENT:
        say(
            f"warning: held-out {headline} is {metrics[headline]:.3f} in inference mode but {batch:.3f} with "
            "batch statistics: BatchNorm's moving statistics do not describe the data"
        )
    return check


def write_run(
    run_dir: Path, config: TrainConfig, data: TaskData, fitted: Fitted, metrics: dict[str, Any]
) -> None:
    run_info = {
        "config": asdict(config),
        "labels": list(data.labels),
        "dataset": data.dataset_name,
        "epochs_run": len(fitted.history["loss"]),
        "augmentation": config.augmentation.describe(),
        "weights_epoch": fitted.kept_epoch,
        "phase_starts": fitted.phase_starts,
        "train_images": len(data.train),
        "val_images": len(data.val),
        "skipped_images": data.skipped,
        "train_seconds": round(fitted.seconds, 1),
    }
    _write_json(run_dir / "run.json", run_info)
    _write_json(run_dir / "history.json", {k: [float(v) for v in vs] for k, vs in fitted.history.items()})
    _write_json(run_dir / "metrics.json", metrics)


def draw_run(
    run_dir: Path, config: TrainConfig, data: TaskData, fitted: Fitted, outputs: dict[str, np.ndarray]
) -> None:
    """Curves, samples of the held-out `outputs` that scored the run beside the truth, a classifier's
    confusion matrix, and augment.png."""
    plot_curves(fitted.history, run_dir / "curves.png", fitted.kept_epoch, fitted.phase_starts)
    shown = np.arange(min(SAMPLES, len(data.test)))
    if config.task == "classify":
        predicted = outputs["probabilities"].argmax(-1)
        shown = sample_indices(data.test.labels, predicted)
        plot_confusion(data.test.labels, predicted, data.labels, run_dir / "confusion.png")
    sample_outputs = {role: value[shown] for role, value in outputs.items()}
    plot_samples(config.task, data.test.subset(shown), sample_outputs, data.labels, run_dir / "samples.png")
    draw_augmentation(run_dir, config, data)


def draw_augmentation(run_dir: Path, config: TrainConfig, data: TaskData) -> None:
    """augment.png: a training image (for detectors, the one whose boxes cover most) under 8 draws of the
    run's augmentation; none without augmentation."""
    augment = augmentation(config)
    if augment is None:
        return
    train = data.train
    shown = 0
    if train.boxes is not None and train.box_classes is not None:
        sides = train.boxes[..., 2:] - train.boxes[..., :2]
        shown = int(np.argmax(np.where(train.box_classes >= 0, sides.prod(-1), 0).sum(-1)))
    example = train.subset(np.array([shown]))
    drawn = pipelines.draws(example, augment, SAMPLES)
    plot_augmentation(config.task, example, drawn, data.labels, augment.describe(), run_dir / "augment.png")


def kept_epoch(stopping: keras.callbacks.EarlyStopping, last_epoch: int) -> int:
    """The 1-based epoch whose weights the model ends with: the best judged one, else the last."""
    return stopping.best_epoch + 1 if stopping.best_weights is not None else last_epoch


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, default=float) + "\n")


def evaluate_run(run_dir: Path) -> dict[str, Any]:
    """Reload a run's saved model and score it again on the held-out test split."""
    run = json.loads((run_dir / "run.json").read_text())
    config = TrainConfig.saved(run["config"])
    model = contract_model(load_run_model(run_dir), config.task)
    data = load_task_data(config)
    return score(model, predict_all(keras_predictor(model), data.test.images), config, data)
