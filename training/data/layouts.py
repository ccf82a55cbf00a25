"""Every data set layout behind one call: scikit-learn's digits, the Oxford-IIIT Pet layout, or a folder per
class, recognised from the directory itself, with a one-line error that names what was looked for."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from service.core.contract import TRIMAP_LABELS
from training.data.arrays import ArraySet, load_labelled, load_split
from training.data.digits import DIGIT_LABELS, held_out_digit_pngs, load_digits_splits
from training.data.folders import FolderLayoutError, load_folders, looks_like_folders
from training.data.oxford import load_layout
from training.errors import DatasetError

Layout = Literal["digits", "oxford", "folders"]
DIGITS = "digits"
SPLITS = ("trainval", "test")
# More undecodable files than this is a broken data set, not a few bad photos.
MAX_SKIPPED_FRACTION = 0.1
LAYOUTS = (
    f"'{DIGITS}' (scikit-learn's handwritten digits)",
    "the Oxford-IIIT Pet layout (DIR/annotations/list.txt, trainval.txt, test.txt, DIR/images/)",
    "a folder per class (DIR/<class>/*.jpg|png|webp|bmp, or DIR/train/<class>/... with DIR/test/)",
)


@dataclass(frozen=True)
class Splits:
    """What a run trains and scores on: labels, trainval, test, and the set's own validation split if any."""

    name: str
    labels: tuple[str, ...]
    trainval: ArraySet
    test: ArraySet
    val: ArraySet | None = None
    skipped: int = 0
    # The test split as a client would upload it: its files, or PNGs of the digits' 8x8 originals.
    held_out: tuple[Path | bytes, ...] = ()


def open_dataset(data: str, task: str, size: int, channels: int, seed: int) -> Splits:
    """The splits of `data` for `task`, whatever its layout."""
    layout = detect_layout(data, task)
    if layout == "digits":
        splits = load_digits_splits(size, seed=seed)
        return Splits(
            "sklearn-digits",
            DIGIT_LABELS,
            splits["trainval"],
            splits["test"],
            held_out=tuple(held_out_digit_pngs(seed=seed)),
        )
    if layout == "oxford":
        return _oxford(Path(data), task, size, channels)
    return _folders(Path(data), size, channels, seed)


def detect_layout(data: str, task: str) -> Layout:
    """Which layout `data` is in, checked against `task` without decoding anything (so a command line can
    refuse it before TensorFlow loads); DatasetError says why not."""
    if data == DIGITS:
        if task != "classify":
            raise DatasetError("the digits data set only supports the classify task")
        return "digits"
    root = Path(data)
    if not root.is_dir():
        raise DatasetError(f"{root} is not a directory; --data takes one of: {'; '.join(LAYOUTS)}")
    if (root / "annotations" / "list.txt").is_file():
        return "oxford"
    if not looks_like_folders(root):
        raise DatasetError(f"{root}: no data set layout found; looked for {'; '.join(LAYOUTS[1:])}")
    if task != "classify":
        raise DatasetError(
            f"{root} is a folder per class, which has labels only: it trains classify; {task} needs "
            "boxes or masks, as the Oxford-IIIT Pet layout has them"
        )
    return "folders"


def _oxford(root: Path, task: str, size: int, channels: int) -> Splits:
    try:
        dataset = load_layout(root)
        decoded = {split: load_split(dataset, split, task, (size, size), channels) for split in SPLITS}
    except (FileNotFoundError, ValueError) as exc:
        raise DatasetError(f"{root} (Oxford-IIIT Pet layout): {exc}") from None
    skipped = _skipped(root, decoded, sum(len(dataset.split(split)) for split in SPLITS))
    labels = TRIMAP_LABELS if task == "segment" else dataset.classes
    return Splits(
        f"oxford-layout:{root.name}",
        tuple(labels),
        decoded["trainval"][0],
        decoded["test"][0],
        skipped=skipped,
        held_out=tuple(record.image for record in dataset.split("test")),
    )


def _skipped(root: Path, decoded: dict[str, tuple[ArraySet, list[Path]]], total: int) -> int:
    """How many images would not decode; DatasetError when that is more than a few bad photos."""
    skipped = [path for _, bad in decoded.values() for path in bad]
    if len(skipped) > MAX_SKIPPED_FRACTION * total:
        raise DatasetError(
            f"{root}: {len(skipped)} of {total} images cannot be decoded (the first: {skipped[0]}); "
            f"at most {MAX_SKIPPED_FRACTION:.0%} may be skipped"
        )
    return len(skipped)


def _folders(root: Path, size: int, channels: int, seed: int) -> Splits:
    try:
        dataset = load_folders(root, seed)
    except FolderLayoutError as exc:
        raise DatasetError(str(exc)) from None
    decoded = {
        split: load_labelled(files, (size, size), channels, name=split)
        for split, files in dataset.splits.items()
    }
    skipped = _skipped(root, decoded, sum(len(files) for files in dataset.splits.values()))
    val = decoded["val"][0] if "val" in decoded else None
    return Splits(
        f"folders:{root.name}",
        dataset.classes,
        decoded["trainval"][0],
        decoded["test"][0],
        val=val,
        skipped=skipped,
        held_out=tuple(file.path for file in dataset.splits["test"]),
    )
