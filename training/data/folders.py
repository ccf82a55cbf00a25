"""The folder-per-class layout (Keras's `image_dataset_from_directory`): `DIR/<class>/<image>`, or
`DIR/train/<class>/...` beside `DIR/test/` (and `DIR/val/`). Class names are the folder names, sorted.

Without a test folder, a seeded split stratified by class holds images out for testing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})
SPLIT_FOLDERS = ("train", "val", "test")
TEST_FRACTION = 0.2


class FolderLayoutError(ValueError):
    """A directory that looks like the folder layout but cannot be trained on, said in one line."""


@dataclass(frozen=True)
class LabelledFile:
    path: Path
    label: int


@dataclass(frozen=True)
class FolderDataset:
    """Class names and the files of each split: `trainval`, `test`, and `val` when the set has its own."""

    root: Path
    classes: tuple[str, ...]
    splits: dict[str, tuple[LabelledFile, ...]]


def looks_like_folders(root: Path) -> bool:
    """Whether `root` holds class folders of images, directly or under `train/`."""
    base = root / "train" if (root / "train").is_dir() else root
    return any(images_in(folder) for folder in _subfolders(base))


def load_folders(root: Path, seed: int, test_fraction: float = TEST_FRACTION) -> FolderDataset:
    """Index a folder-per-class set; FolderLayoutError when it has fewer than two classes or empty splits."""
    if (root / "train").is_dir():
        classes = _class_names(root / "train")
        splits = {"trainval": _files(root / "train", classes)}
        for name in ("val", "test"):
            if (root / name).is_dir():
                splits[name] = _files(root / name, classes)
        if "test" not in splits:
            splits["trainval"], splits["test"] = stratified_split(splits["trainval"], test_fraction, seed)
    else:
        classes = _class_names(root)
        kept, held = stratified_split(_files(root, classes), test_fraction, seed)
        splits = {"trainval": kept, "test": held}
    for name, files in splits.items():
        if not files:
            raise FolderLayoutError(f"{root}: the {name} split has no images")
    return FolderDataset(root=root, classes=classes, splits=splits)


def stratified_split(
    files: Sequence[LabelledFile], fraction: float, seed: int
) -> tuple[tuple[LabelledFile, ...], tuple[LabelledFile, ...]]:
    """(kept, held out): `fraction` of each class held out (at least one when it has two), seeded."""
    rng = np.random.default_rng(seed)
    kept: list[LabelledFile] = []
    held: list[LabelledFile] = []
    for label in sorted({file.label for file in files}):
        members = [file for file in files if file.label == label]
        order = rng.permutation(len(members))
        count = min(len(members) - 1, max(1, round(len(members) * fraction))) if len(members) > 1 else 0
        held += [members[i] for i in order[:count]]
        kept += [members[i] for i in order[count:]]
    return tuple(kept), tuple(held)


def _class_names(base: Path) -> tuple[str, ...]:
    classes = tuple(sorted(folder.name for folder in _subfolders(base) if images_in(folder)))
    empty = sorted(folder.name for folder in _subfolders(base) if not images_in(folder))
    if classes and empty:
        # Dropped, it would train a model without that class and say nothing.
        raise FolderLayoutError(
            f"{base}: class folders {empty} hold no images: add images or remove the folders"
        )
    if len(classes) < 2:
        found = f"only {classes[0]!r}" if classes else "none"
        raise FolderLayoutError(
            f"{base}: a classifier needs at least two class folders of images, found {found}"
        )
    return classes


def _files(base: Path, classes: Sequence[str]) -> tuple[LabelledFile, ...]:
    unknown = sorted(folder.name for folder in _subfolders(base) if images_in(folder))
    extra = sorted(set(unknown) - set(classes))
    if extra:
        raise FolderLayoutError(f"{base}: class folders {extra} are not in train/ ({list(classes)})")
    return tuple(
        LabelledFile(path, label) for label, name in enumerate(classes) for path in images_in(base / name)
    )


def _subfolders(base: Path) -> Iterable[Path]:
    if not base.is_dir():
        return []
    return sorted(
        path
        for path in base.iterdir()
        if path.is_dir() and not path.name.startswith(".") and path.name not in SPLIT_FOLDERS
    )


def images_in(folder: Path) -> list[Path]:
    """Every image file under `folder`, in a stable order."""
    if not folder.is_dir():
        return []
    return sorted(
        path for path in folder.rglob("*") if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()
    )
