"""What decides a training run, and what makes one impossible, checked without TensorFlow."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from training.architectures import DEFAULT_ARCH, DIGITS_ARCH, architecture
from training.architectures.weights import weights_file
from training.augmentation import Augmentation
from training.data.layouts import DIGITS

LOCALIZE_LOSS_WEIGHTS = (0.8, 0.2)  # class, box: the course's classification + localisation recipe


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
    augmentation: Augmentation | None = None  # None: the defaults for the data
    init_from: str | None = None
    freeze: int = 0
    fine_tune_epochs: int = 0
    unfreeze: int | None = None  # top layers of the base to fine-tune; None: all of them
    fine_tune_lr: float | None = None  # default: a tenth of learning_rate
    loss_weights: tuple[float, float] = LOCALIZE_LOSS_WEIGHTS
    command: str = ""  # the command line that started the run, for its model card
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        digits = self.data == DIGITS and self.task == "classify"
        self.arch = self.arch or (DIGITS_ARCH if digits else DEFAULT_ARCH[self.task])
        self.loss_weights = (float(self.loss_weights[0]), float(self.loss_weights[1]))
        if isinstance(self.augmentation, dict):  # as run.json holds it
            self.augmentation = Augmentation(**self.augmentation)
        self.augmentation = self.augmentation or Augmentation.defaults(self.data == DIGITS)
        if self.early_stop_after is None:
            # While the learning rate is high, BatchNorm's moving statistics trail the weights, so validation
            # loss can climb for epochs before it falls; judged then, it kept a segmenter's first epoch.
            self.early_stop_after = self.epochs // 2

    @classmethod
    def saved(cls, config: dict[str, Any]) -> TrainConfig:
        """The config of a run.json, including one whose `augment` (on or off) predates the options."""
        config = dict(config)
        if "augment" in config:
            digits = config.get("data") == DIGITS
            on = Augmentation.defaults(digits, quarter_turns=not digits)
            config["augmentation"] = on if config.pop("augment") else Augmentation.none()
        return cls(**config)

    @property
    def channels(self) -> int:
        return 1 if self.data == DIGITS else 3

    @property
    def tune_lr(self) -> float:
        return self.fine_tune_lr if self.fine_tune_lr is not None else self.learning_rate / 10

    def problem(self) -> str | None:
        """Why this run cannot start, in one line, or None; UnknownArchitectureError for a wrong --arch."""
        arch = architecture(self.task, self.arch)
        size = arch.size_problem(self.size)
        if size:
            return size
        if self.weights and not arch.backbone:
            return f"--weights is for the keras.applications backbones; {self.arch} has no pre-trained base"
        if self.weights:
            weights_file(self.arch, self.weights, self.size)  # WeightsError names the file and its place
        if self.fine_tune_epochs and not self.weights:
            return (
                "--fine-tune-epochs needs --weights: a base trained from scratch has nothing to keep frozen"
            )
        if self.unfreeze is not None and not self.fine_tune_epochs:
            return "--unfreeze needs --fine-tune-epochs: it says how much of the base the second phase trains"
        if self.freeze and not self.init_from:
            return "--freeze needs --init-from: it keeps layers fixed that came from another run"
        return self.augmentation.problem()
