"""Command line: `python -m training {synth,train,evaluate,export,sign}`; TensorFlow loads for train,
evaluate and export."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def _at_least_one(text: str) -> int:
    """An argparse type: a whole number >= 1, refused with usage before TensorFlow loads."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    synth = sub.add_parser("synth", help="write a synthetic data set in the Oxford-IIIT Pet layout")
    synth.add_argument("--out", type=Path, required=True)
    synth.add_argument("--count", type=_at_least_one, required=True)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--max-objects", type=int, default=1)
    synth.add_argument("--test-fraction", type=float, default=0.2)

    train = sub.add_parser("train", help="train a model and score it on the held-out test split")
    train.add_argument("task", choices=["classify", "detect", "segment"])
    train.add_argument(
        "--data",
        required=True,
        help="a directory (a folder per class, or the Oxford-IIIT Pet layout), or 'digits'",
    )
    train.add_argument("--run", type=Path, required=True, help="run directory for model, plots, metrics")
    train.add_argument("--arch", default="", help="architecture (default per task)")
    train.add_argument("--size", type=_at_least_one, default=64, help="square input size in pixels")
    train.add_argument("--epochs", type=_at_least_one, default=20)
    train.add_argument("--batch", type=_at_least_one, default=32)
    train.add_argument("--lr", type=float, default=2e-3)
    train.add_argument("--patience", type=int, default=5)
    train.add_argument(
        "--early-stop-after",
        type=int,
        default=None,
        help="epochs to run before early stopping judges validation loss (default: half of --epochs)",
    )
    train.add_argument("--seed", type=int, default=0)
    train.add_argument(
        "--weights", default=None, help="keras.applications weights: 'imagenet' or a file path"
    )
    train.add_argument("--no-augment", action="store_true", help="train on the images as they are")
    train.add_argument(
        "--init-from", default=None, help="a run directory whose matching layers start this model"
    )
    train.add_argument(
        "--freeze", type=int, default=0, help="with --init-from: keep the first N layers with weights fixed"
    )

    evaluate = sub.add_parser("evaluate", help="re-score a run's model on the held-out test split")
    evaluate.add_argument("--run", type=Path, required=True)

    export = sub.add_parser("export", help="write models/<name>/<version>/model.onnx and its model card")
    export.add_argument("--run", type=Path, required=True)
    export.add_argument("--name", required=True)
    export.add_argument("--version", type=int, default=1)
    export.add_argument("--models-dir", type=Path, default=Path("models"))
    export.add_argument("--quantize", action="store_true", help="static QDQ INT8 (classifiers)")

    sign = sub.add_parser(
        "sign", help="add or renew vision.sha256 in model files, after editing their metadata on purpose"
    )
    sign.add_argument("files", type=Path, nargs="+")
    return parser


def _quiet_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "synth":
        from training.data.synth import write_dataset

        write_dataset(args.out, args.count, args.seed, args.max_objects, args.test_fraction)
        print(f"wrote {args.count} images to {args.out}")
        return 0
    if args.command == "sign":
        from training.signing import sign_file

        for path in args.files:
            print(f"{path}: sha256 {sign_file(path)}")
        return 0
    if args.command == "train":
        from training.data.layouts import DatasetError, detect_layout

        try:
            detect_layout(args.data, args.task)  # before TensorFlow loads: a wrong path fails in a moment
        except DatasetError as exc:
            print(f"train: {exc}", file=sys.stderr)
            return 2
    _quiet_tensorflow()
    if args.command == "train":
        from training.data.layouts import DatasetError
        from training.train import TrainConfig, train

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
            augment=not args.no_augment,
            init_from=args.init_from,
            freeze=args.freeze,
        )
        try:
            print(json.dumps(train(config), indent=2, default=float))
        except DatasetError as exc:
            print(f"train: {exc}", file=sys.stderr)
            return 2
        return 0
    if args.command == "evaluate":
        from training.train import evaluate_run

        print(json.dumps(evaluate_run(args.run), indent=2, default=float))
        return 0
    from training.export import ExportMismatchError, export_run

    try:
        path = export_run(args.run, args.models_dir, args.name, args.version, int8=args.quantize)
    except ExportMismatchError as exc:
        print(f"export refused: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0
