"""How a run varies its training images: the options, their defaults per data set, and the words for them.

The options follow Keras's preprocessing layers (RandomFlip, RandomRotation, RandomTranslation, RandomZoom,
RandomBrightness, RandomContrast); training.data.pipelines applies them to images, masks and boxes alike.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

FLIPS = ("none", "horizontal", "vertical", "both")


@dataclass(frozen=True)
class Augmentation:
    """Random transforms drawn afresh for every training image; each is off at 0 (or flip 'none')."""

    flip: str = "horizontal"
    quarter_turns: bool = False  # photos are upright; turn them only where orientation carries nothing
    rotation: float = 0.0  # degrees, either way
    shift: float = 0.0  # fraction of each side, either way
    zoom: float = 0.15  # crops down to (1 - zoom) of each side, scaled back
    brightness: float = 30.0  # levels of 255, either way
    contrast: float = 0.2  # fraction, either way

    @classmethod
    def none(cls) -> Augmentation:
        return cls(flip="none", zoom=0.0, brightness=0.0, contrast=0.0)

    @classmethod
    def defaults(cls, digits: bool, **chosen: Any) -> Augmentation:
        """The defaults for handwritten digits or other data, with the options chosen (not None) over them."""
        # Digits are not mirror-symmetric, and a 7 turned is no 7.
        base = cls(flip="none", zoom=0.1) if digits else cls()
        return replace(base, **{name: value for name, value in chosen.items() if value is not None})

    @property
    def active(self) -> bool:
        return self != Augmentation.none()

    def problem(self) -> str | None:
        """Why these settings cannot train, in one line, or None."""
        limits = {
            "rotation": (self.rotation, 180.0, "degrees"),
            "shift": (self.shift, 0.5, "of each side"),
            "zoom": (self.zoom, 0.5, "of each side"),
            "brightness": (self.brightness, 255.0, "levels"),
            "contrast": (self.contrast, 1.0, ""),
        }
        if self.flip not in FLIPS:
            return f"--flip takes {', '.join(FLIPS)}, not {self.flip!r}"
        for name, (value, most, unit) in limits.items():
            if not 0 <= value <= most:
                return f"--{name} takes 0 to {most:g} {unit}".rstrip() + f", not {value:g}"
        return None

    def describe(self) -> str:
        """The transforms in words, as the console, run.json and the model card say them."""
        if not self.active:
            return "none"
        flips = {"horizontal": "horizontal flips", "vertical": "vertical flips"}
        flips["both"] = "horizontal and vertical flips"
        said = [
            flips.get(self.flip, ""),
            "quarter turns" if self.quarter_turns else "",
            f"rotations up to ±{self.rotation:g}°" if self.rotation else "",
            f"shifts up to ±{self.shift * 100:g} % of each side" if self.shift else "",
            f"crops of {(1 - self.zoom) * 100:g} to 100 % of each side, scaled back" if self.zoom else "",
            f"brightness ±{self.brightness:g} levels" if self.brightness else "",
            f"contrast ±{self.contrast * 100:g} %" if self.contrast else "",
        ]
        return ", ".join(part for part in said if part)


OPTIONS = tuple(option.name for option in fields(Augmentation))
