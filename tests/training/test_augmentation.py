"""Augmentation settings: defaults per data set, the user's choices over them, limits, and their words."""

from __future__ import annotations

from dataclasses import asdict

import pytest

from training.augmentation import Augmentation
from training.config import TrainConfig


def test_photos_are_not_turned_by_default_and_digits_are_not_flipped() -> None:
    photos, digits = Augmentation.defaults(digits=False), Augmentation.defaults(digits=True)
    assert (photos.flip, photos.quarter_turns, photos.zoom) == ("horizontal", False, 0.15)
    assert (digits.flip, digits.quarter_turns, digits.zoom) == ("none", False, 0.1)


def test_chosen_options_replace_only_their_defaults() -> None:
    chosen = Augmentation.defaults(digits=False, rotation=10.0, quarter_turns=True, flip=None)
    assert chosen == Augmentation(rotation=10.0, quarter_turns=True)


def test_every_option_is_said() -> None:
    everything = Augmentation(flip="both", quarter_turns=True, rotation=12.5, shift=0.1, zoom=0.2)
    assert everything.describe() == (
        "horizontal and vertical flips, quarter turns, rotations up to ±12.5°, "
        "shifts up to ±10 % of each side, crops of 80 to 100 % of each side, scaled back, "
        "brightness ±30 levels, contrast ±20 %"
    )
    assert not Augmentation.none().active
    assert Augmentation.none().describe() == "none"


@pytest.mark.parametrize(
    ("options", "said"),
    [
        ({"rotation": 200.0}, "--rotation takes 0 to 180 degrees, not 200"),
        ({"shift": -0.1}, "--shift takes 0 to 0.5 of each side, not -0.1"),
        ({"zoom": 0.9}, "--zoom takes 0 to 0.5 of each side, not 0.9"),
        ({"contrast": 2.0}, "--contrast takes 0 to 1, not 2"),
        ({"flip": "diagonal"}, "--flip takes none, horizontal, vertical, both, not 'diagonal'"),
    ],
)
def test_settings_out_of_range_are_refused_in_one_line(options: dict[str, object], said: str) -> None:
    assert Augmentation(**options).problem() == said  # type: ignore[arg-type]
    config = TrainConfig(task="classify", data="data", run_dir="run", augmentation=Augmentation(**options))  # type: ignore[arg-type]
    assert config.problem() == said


def test_run_json_gives_back_the_same_settings() -> None:
    chosen = Augmentation(flip="vertical", rotation=15.0)
    config = TrainConfig(task="detect", data="data", run_dir="run", augmentation=chosen)
    assert TrainConfig.saved(asdict(config)).augmentation == chosen


@pytest.mark.parametrize(
    ("data", "augment", "expected"),
    [
        ("data/shapes", True, Augmentation(quarter_turns=True)),
        ("digits", True, Augmentation(flip="none", zoom=0.1)),
        ("data/shapes", False, Augmentation.none()),
    ],
)
def test_a_run_json_with_only_augment_on_or_off_still_loads(
    data: str, augment: bool, expected: Augmentation
) -> None:
    saved = asdict(TrainConfig(task="classify", data=data, run_dir="run"))
    del saved["augmentation"]
    saved["augment"] = augment
    assert TrainConfig.saved(saved).augmentation == expected
