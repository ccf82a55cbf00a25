"""Command line: `python -m training {synth,train,evaluate,export,predict,sign}`.

Arguments, data sets and run directories are checked before TensorFlow loads, and a user's mistake is one
line on stderr with exit status 2, never a traceback. A run whose model is of no use exits 3.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from training.architectures import ARCHITECTURES, UnknownArchitectureError
from training.augmentation import FLIPS, OPTIONS, Augmentation
from training.errors import DatasetError, ExportMismatchError, UselessModelError, UserError

if TYPE_CHECKING:  # a type only: `sign` runs in a service-only install, with none of training's packages
    from training.config import TrainConfig

USER_ERROR = 2
# Fewer images than this cannot be binned by deciles with a few in each bin.
MIN_REFERENCE_IMAGES = 50
# The run is written whole, but its model answers no better than chance, or one class for everything.
USELESS_MODEL = 3


class HelpWithDefaults(argparse.RawDescriptionHelpFormatter):
    """--help with each option's default where it has one worth saying, and epilogs as written."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        unsaid = (
            action.default is None or action.default is False or action.default in ("", argparse.SUPPRESS)
        )
        if not unsaid and "default" not in text:
            text += " (default: %(default)s)"
        return text


class OneLineParser(argparse.ArgumentParser):
    """argparse, but an argument error is one line (the usage is a --help away)."""

    def error(self, message: str) -> NoReturn:
        self.exit(USER_ERROR, f"{self.prog}: {message} (see --help)\n")


def _at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number >= minimum, refused before TensorFlow loads."""

    def whole(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {value}")
        return value

    return whole


_at_least_one = _at_least(1)


def _architectures_help() -> str:
    lines = ["architectures (--arch), with the smallest --size each takes:"]
    for task in ("classify", "detect", "segment"):
        lines.append(f"  {task}:")
        lines += [
            f"    {a.name:<16}{a.summary}; --size >= {a.min_size}"
            + (f", a multiple of {a.multiple_of}" if a.multiple_of > 1 else "")
            for a in ARCHITECTURES
            if a.task == task
        ]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--verbose", action="store_true", help="show TensorFlow's own start-up messages")
    parser = OneLineParser(prog="python -m training", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name: str, **options: Any) -> argparse.ArgumentParser:
        return sub.add_parser(name, formatter_class=HelpWithDefaults, **options)

    synth = command(
        "synth", parents=[common], help="write a synthetic data set in the Oxford-IIIT Pet layout"
    )
    synth.add_argument("--out", type=Path, required=True, help="the data set's directory (empty, or --force)")
    synth.add_argument(
        "--count", type=_at_least(2), required=True, help="images, at least one for training and one for test"
    )
    synth.add_argument(
        "--seed", type=int, default=0, help="seed of the shapes, colours and backgrounds drawn"
    )
    synth.add_argument(
        "--max-objects",
        type=_at_least_one,
        default=1,
        help="shapes per image, 1 to this many (1 for the localisers)",
    )
    synth.add_argument(
        "--test-fraction", type=float, default=0.2, help="share of the images held out for test"
    )
    synth.add_argument("--force", action="store_true", help="replace the images and lists of an existing set")

    train = command(
        "train",
        parents=[common],
        help="train a model and score it on the held-out test split",
        epilog=_architectures_help(),
    )
    train.add_argument("task", choices=["classify", "detect", "segment"], help="what the model answers")
    train.add_argument(
        "--data",
        required=True,
        help="a directory (a folder per class, or the Oxford-IIIT Pet layout), or 'digits'",
    )
    train.add_argument("--run", type=Path, required=True, help="run directory for model, plots, metrics")
    train.add_argument(
        "--arch",
        default="",
        choices=sorted({a.name for a in ARCHITECTURES}),
        metavar="ARCH",
        help="architecture (listed below; default small_cnn, grid or unet by task, lenet5 for digits)",
    )
    train.add_argument("--size", type=_at_least_one, default=64, help="square input size in pixels")
    train.add_argument(
        "--epochs", type=_at_least_one, default=20, help="most epochs (early stopping may end sooner)"
    )
    train.add_argument("--batch", type=_at_least_one, default=32, help="images per training step")
    train.add_argument("--lr", type=float, default=2e-3, help="Adam's learning rate, decayed on a cosine")
    train.add_argument(
        "--patience", type=int, default=5, help="epochs without a better validation loss before stopping"
    )
    train.add_argument(
        "--early-stop-after",
        type=int,
        default=None,
        help="epochs to run before early stopping judges validation loss (default: half of --epochs)",
    )
    train.add_argument("--seed", type=int, default=0, help="seed of the split, the weights and the shuffling")
    train.add_argument(
        "--weights",
        default=None,
        help="backbone weights: 'imagenet' (the file Keras caches in ~/.keras/models, never downloaded) "
        "or a weights file of the base (include_top=False)",
    )
    train.add_argument(
        "--fine-tune-epochs",
        type=_at_least_one,
        default=0,
        help="with --weights: after --epochs with the base frozen, this many with its top layers training",
    )
    train.add_argument(
        "--unfreeze",
        type=_at_least_one,
        default=None,
        help="layers with weights at the top of the base that fine-tuning trains (default: all)",
    )
    train.add_argument("--fine-tune-lr", type=float, default=None, help="default: a tenth of --lr")
    train.add_argument(
        "--loss-weights",
        type=float,
        nargs=2,
        default=None,
        metavar=("CLASS", "BOX"),
        help="localize and encoder_localize: weights of the class and box losses (default 0.8 0.2)",
    )
    augment = train.add_argument_group(
        "augmentation",
        "random transforms of each training image, drawn afresh every epoch (for digits: no flips, zoom 0.1)",
    )
    augment.add_argument("--no-augment", action="store_true", help="train on the images as they are")
    augment.add_argument(
        "--flip", choices=FLIPS, default=None, help="mirror images at random (default: horizontal)"
    )
    augment.add_argument(
        "--quarter-turns",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="turn square images by 0, 90, 180 or 270 degrees: for data with no upright (default: off)",
    )
    augment.add_argument(
        "--rotation",
        type=float,
        default=None,
        metavar="DEGREES",
        help="turn up to this far either way (default: 0)",
    )
    augment.add_argument(
        "--shift",
        type=float,
        default=None,
        metavar="FRACTION",
        help="move up to this share of each side (default: 0)",
    )
    augment.add_argument(
        "--zoom",
        type=float,
        default=None,
        metavar="FRACTION",
        help="crop up to this share of each side off and scale back (default: 0.15)",
    )
    augment.add_argument(
        "--brightness",
        type=float,
        default=None,
        metavar="LEVELS",
        help="add up to this either way (default: 30)",
    )
    augment.add_argument(
        "--contrast",
        type=float,
        default=None,
        metavar="FRACTION",
        help="scale contrast by up to this either way (default: 0.2)",
    )
    train.add_argument(
        "--allow-useless",
        action="store_true",
        help="exit 0 even when the model is of no use (held-out accuracy not 5 points above chance, "
        "the same answer for every image, one class for everything); otherwise such a run exits "
        f"{USELESS_MODEL}. The warnings still print and stay in metrics.json and on the card",
    )
    train.add_argument(
        "--init-from", default=None, help="a run directory whose matching layers start this model"
    )
    train.add_argument(
        "--freeze", type=int, default=0, help="with --init-from: keep the first N layers with weights fixed"
    )

    visualize = command(
        "visualize",
        parents=[common],
        help="pictures of what a run's CNN does: first-layer filters, feature maps and class activation map",
    )
    visualize.add_argument("--run", type=Path, required=True, help="the run directory `train` wrote")
    visualize.add_argument("--image", type=Path, required=True, help="the image whose feature maps to show")
    visualize.add_argument(
        "--layers",
        nargs="+",
        metavar="LAYER",
        help="the model's layers whose feature maps to show (default: the last layer at each resolution)",
    )
    visualize.add_argument(
        "--out", type=Path, default=None, help="the folder for the PNGs (default: RUN/visualize)"
    )

    evaluate = command("evaluate", parents=[common], help="re-score a run's model on the held-out test split")
    evaluate.add_argument("--run", type=Path, required=True, help="the run directory `train` wrote")

    export = command(
        "export", parents=[common], help="write models/<name>/<version>/model.onnx and its model card"
    )
    export.add_argument("--run", type=Path, required=True, help="the run directory `train` wrote")
    export.add_argument("--name", required=True, help="the model's name in the repository and its metadata")
    export.add_argument("--version", type=_at_least_one, default=1, help="the model version to write")
    export.add_argument(
        "--models-dir", type=Path, default=Path("models"), help="the model repository the service serves"
    )
    export.add_argument("--quantize", action="store_true", help="static QDQ INT8 (classifiers)")
    export.add_argument("--force", action="store_true", help="replace an existing model version")
    export.add_argument(
        "--reference",
        type=Path,
        metavar="FOLDER",
        help="measure the drift reference (vision.reference) on the images under FOLDER, images the run "
        "never trained on, rather than on its held-out split: more images make the unfamiliar line steadier",
    )

    predict = command(
        "predict",
        parents=[common],
        help="answer for local images as the service would, printing its JSON, without a server",
    )
    predict.add_argument("images", type=Path, nargs="+", help="image files")
    predict.add_argument("--model", type=Path, required=True, help="a model.onnx file or a run directory")

    sign = command(
        "sign", help="add or renew vision.sha256 in model files, after editing their metadata on purpose"
    )
    sign.add_argument("files", type=Path, nargs="+", help="model.onnx files")
    sign.add_argument(
        "--reference",
        type=Path,
        metavar="FOLDER",
        help="first measure the drift reference (vision.reference) on the images under FOLDER: held-out "
        f"images like the model's training data, at least {MIN_REFERENCE_IMAGES}",
    )
    return parser


@contextlib.contextmanager
def _stderr_silenced() -> Iterator[None]:
    """fd 2 to /dev/null: TensorFlow's C++ start-up lines come before its own log level applies."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "wb") as null:
        os.dup2(null.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _load_tensorflow(verbose: bool) -> None:
    if verbose:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with _stderr_silenced():
        import tensorflow  # noqa: F401


def _run_dir(path: Path) -> Path:
    if not (path / "run.json").is_file() or not (path / "model.keras").is_file():
        raise UserError(f"{path} is not a run directory (no run.json and model.keras): `train` writes one")
    return path


def _augmentation(args: argparse.Namespace) -> Augmentation:
    from training.data.layouts import DIGITS

    chosen = {name: getattr(args, name) for name in OPTIONS}
    if args.no_augment:
        named = [f"--{name.replace('_', '-')}" for name, value in chosen.items() if value is not None]
        if named:
            raise UserError(f"--no-augment turns every transform off: drop it or {', '.join(named)}")
        return Augmentation.none()
    return Augmentation.defaults(args.data == DIGITS, **chosen)


def _train_config(args: argparse.Namespace, argv: list[str]) -> TrainConfig:
    from training.config import TrainConfig
    from training.data.layouts import detect_layout

    options = {"loss_weights": tuple(args.loss_weights)} if args.loss_weights else {}
    config = TrainConfig(
        task=args.task,
        data=args.data,
        run_dir=str(args.run),
        arch=args.arch,
        size=args.size,
        epochs=args.epochs,
        batch=args.batch,
        learning_rate=args.lr,
        patience=args.patience,
        early_stop_after=args.early_stop_after,
        seed=args.seed,
        weights=args.weights,
        augmentation=_augmentation(args),
        init_from=args.init_from,
        freeze=args.freeze,
        fine_tune_epochs=args.fine_tune_epochs,
        unfreeze=args.unfreeze,
        fine_tune_lr=args.fine_tune_lr,
        command=shlex.join(["python", "-m", "training", *argv]),
        **options,
    )
    detect_layout(args.data, args.task)
    problem = config.problem()
    if problem:
        raise UserError(problem)
    if args.init_from:
        _run_dir(Path(args.init_from))
    return config


def _synth(args: argparse.Namespace, argv: list[str]) -> None:
    from training.data.synth import write_dataset

    if args.out.exists() and any(args.out.iterdir()) and not args.force:
        raise UserError(f"{args.out} is not empty: --force replaces the data set written there")
    write_dataset(args.out, args.count, args.seed, args.max_objects, args.test_fraction, replace=args.force)
    print(f"wrote {args.count} images to {args.out}")


def _train(args: argparse.Namespace, argv: list[str]) -> None:
    config = _train_config(args, argv)
    _load_tensorflow(args.verbose)
    from training.train import finished_line, say, train

    metrics = train(config)
    print(json.dumps(metrics, indent=2, default=float))
    say(finished_line(Path(config.run_dir), metrics))
    if metrics.get("warnings") and not args.allow_useless:
        why = "; ".join(metrics["warnings"])
        raise UselessModelError(
            f"the model in {config.run_dir} is of no use ({why}); the run is kept, and --allow-useless makes "
            "this exit 0"
        )


def _evaluate(args: argparse.Namespace, argv: list[str]) -> None:
    _run_dir(args.run)
    _load_tensorflow(args.verbose)
    from training.train import evaluate_run

    print(json.dumps(evaluate_run(args.run), indent=2, default=float))


def _export(args: argparse.Namespace, argv: list[str]) -> None:
    _run_dir(args.run)
    target = args.models_dir / args.name / str(args.version)
    if target.exists() and not args.force:
        raise UserError(f"{target} exists: --force replaces that model version, or pick another --version")
    if args.reference is not None:
        _reference_images(args.reference)
    _load_tensorflow(args.verbose)
    from training.export import export_run

    path = export_run(
        args.run,
        args.models_dir,
        args.name,
        args.version,
        int8=args.quantize,
        replace=args.force,
        reference=args.reference,
    )
    print(f"wrote {path}")


def _visualize(args: argparse.Namespace, argv: list[str]) -> None:
    _run_dir(args.run)
    if not args.image.is_file():
        raise UserError(f"no such image: {args.image}")
    _load_tensorflow(args.verbose)
    from training.visualize import visualize_run

    for path in visualize_run(args.run, args.image, args.layers, args.out or args.run / "visualize"):
        print(f"wrote {path}")


def _predict(args: argparse.Namespace, argv: list[str]) -> None:
    exported = args.model.is_file()
    if args.model.suffix == ".onnx" and not exported:
        raise UserError(f"no such model file: {args.model}")
    if not exported:
        _run_dir(args.model)
    missing = [str(path) for path in args.images if not path.is_file()]
    if missing:
        raise UserError(f"no such image: {', '.join(missing)}")
    if not exported:
        _load_tensorflow(args.verbose)  # a run is exported to ONNX first
    from training.predict import predict_files

    print(predict_files(args.model, args.images))


def _sign(args: argparse.Namespace, argv: list[str]) -> None:
    missing_files = [str(path) for path in args.files if not path.is_file()]
    if missing_files:
        raise UserError(f"no such model file: {', '.join(missing_files)}")
    try:
        from training.signing import add_reference, sign_file
    except ImportError as missing:
        raise UserError(
            f"signing needs {missing.name}, which this install lacks: pip install 'vision-service[sign]'"
        ) from None

    uploads = [] if args.reference is None else _reference_images(args.reference)
    for path in args.files:
        if uploads:
            reference = add_reference(path, uploads, str(args.reference))
            print(
                f"{path}: reference of {reference.images} images, unfamiliar under confidence "
                f"{reference.low_confidence:.4g}"
            )
        print(f"{path}: sha256 {sign_file(path)}")


def _reference_images(folder: Path) -> list[Path]:
    """The images under a --reference folder; a UserError when there are too few to bin."""
    from training.data.folders import images_in

    if not folder.is_dir():
        raise UserError(f"--reference {folder}: no such folder")
    found = images_in(folder)
    if len(found) < MIN_REFERENCE_IMAGES:
        raise UserError(
            f"--reference {folder}: {len(found)} images found, at least {MIN_REFERENCE_IMAGES} are needed "
            "to bin each signal by its deciles"
        )
    return found


COMMANDS: dict[str, Callable[[argparse.Namespace, list[str]], None]] = {
    "synth": _synth,
    "train": _train,
    "evaluate": _evaluate,
    "export": _export,
    "predict": _predict,
    "visualize": _visualize,
    "sign": _sign,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parser().parse_args(argv)
    try:
        COMMANDS[args.command](args, argv)
    except (UserError, DatasetError, UnknownArchitectureError) as exc:
        print(f"{args.command}: {exc}", file=sys.stderr)
        return USER_ERROR
    except ExportMismatchError as exc:
        print(f"export refused: {exc}", file=sys.stderr)
        return 1
    except UselessModelError as exc:
        print(f"train: {exc}", file=sys.stderr)
        return USELESS_MODEL
    return 0
