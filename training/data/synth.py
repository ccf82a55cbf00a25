"""Seeded synthetic scenes in the real Oxford-IIIT Pet layout (images, trimaps, VOC XML, list files)."""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from tqdm import tqdm

from service.core.contract import TRIMAP_VALUES
from training.data.oxford import write_list_files, write_voc_xml

# Shapes differ in outline, not only colour; the class name starts each image's file name (star_17.jpg).
SHAPES = ("circle", "cross", "hexagon", "square", "star", "triangle")
TRIMAP_PET, TRIMAP_BACKGROUND, TRIMAP_BORDER = (
    TRIMAP_VALUES[label] for label in ("pet", "background", "border")
)
BORDER_HALF_WIDTH = 2
MIN_SIDE, MAX_SIDE = 120, 144
# Rotation is a tilt of up to 30 degrees from upright: with any angle a 2-core CPU cannot learn the classes in
# minutes. `make models` adds quarter turns and mirroring in training (--quarter-turns, --flip).
MAX_TILT = math.radians(30)
LONE, CROWD = (0.2, 0.36), (0.09, 0.19)  # circumradius, as a fraction of the image's shorter side
MIN_CONTRAST = 110.0  # RGB distance between a shape's colour and what lies behind it


@dataclass(frozen=True)
class SceneObject:
    """One drawn shape: its class, its full-extent box in pixels, and whether something covers part of it."""

    shape: str
    box: tuple[int, int, int, int]
    occluded: bool
    truncated: bool


@dataclass(frozen=True)
class Scene:
    """A rendered image, its trimap (values 1, 2, 3) and its objects."""

    image: Image.Image
    trimap: Image.Image
    objects: tuple[SceneObject, ...]


def shape_polygon(shape: str, cx: float, cy: float, radius: float, angle: float) -> list[tuple[float, float]]:
    """Vertices of a shape centred at (cx, cy) with the given circumradius and rotation."""
    if shape == "circle":
        points = [(math.cos(t), math.sin(t)) for t in np.linspace(0, 2 * math.pi, 48, endpoint=False)]
    elif shape == "square":
        points = [(math.cos(t), math.sin(t)) for t in np.arange(4) * math.pi / 2 + math.pi / 4]
    elif shape == "triangle":
        points = [(math.cos(t), math.sin(t)) for t in np.arange(3) * 2 * math.pi / 3 - math.pi / 2]
    elif shape == "hexagon":
        points = [(math.cos(t), math.sin(t)) for t in np.arange(6) * math.pi / 3]
    elif shape == "star":
        points = [
            ((1.0 if i % 2 == 0 else 0.42) * math.cos(t), (1.0 if i % 2 == 0 else 0.42) * math.sin(t))
            for i, t in enumerate(np.arange(10) * math.pi / 5 - math.pi / 2)
        ]
    elif shape == "cross":
        a, b = 0.33, 1.0
        points = [(a, b), (-a, b), (-a, a), (-b, a), (-b, -a), (-a, -a), (-a, -b), (a, -b), (a, -a), (b, -a)]
        points += [(b, a), (a, a)]
        points = [(x / math.hypot(b, a), y / math.hypot(b, a)) for x, y in points]
    else:
        raise ValueError(f"unknown shape {shape!r}")
    cos, sin = math.cos(angle), math.sin(angle)
    return [(cx + radius * (x * cos - y * sin), cy + radius * (x * sin + y * cos)) for x, y in points]


def _random_colour(rng: np.random.Generator) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(0, 256, size=3))  # type: ignore[return-value]


def _distinct_colour(rng: np.random.Generator, avoid: np.ndarray | None) -> np.ndarray:
    """A random colour, redrawn a few times until it stands out from `avoid` (the colour behind it)."""
    colour = np.array(_random_colour(rng), np.float32)
    for _ in range(10):
        if avoid is None or np.linalg.norm(colour - avoid) > MIN_CONTRAST:
            break
        colour = np.array(_random_colour(rng), np.float32)
    return colour


def _texture(
    rng: np.random.Generator, width: int, height: int, avoid: np.ndarray | None = None
) -> Image.Image:
    """A fill for a shape: solid, stripes, checks, gradient or noise around one colour that stands out."""
    a = _distinct_colour(rng, avoid)
    b = np.clip(a + rng.choice([-1.0, 1.0], size=3) * rng.uniform(20, 60, size=3), 0, 255)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    kind = rng.integers(0, 5)
    if kind == 0:
        weight = np.zeros((height, width), np.float32)
    elif kind == 1:
        period = rng.uniform(4, 10)
        theta = rng.uniform(0, math.pi)
        weight = ((xx * math.cos(theta) + yy * math.sin(theta)) // period % 2).astype(np.float32)
    elif kind == 2:
        period = int(rng.integers(4, 9))
        weight = ((xx // period + yy // period) % 2).astype(np.float32)
    elif kind == 3:
        weight = xx / max(width - 1, 1)
    else:
        weight = rng.uniform(0, 1, size=(height, width)).astype(np.float32)
    pixels = a[None, None] * (1 - weight[..., None]) + b[None, None] * weight[..., None]
    return Image.fromarray(pixels.astype(np.uint8), "RGB")


def _fill(rng: np.random.Generator, image: Image.Image, mask: Image.Image) -> None:
    """Paint a random texture into the image where the mask is set (textures only span the mask's box)."""
    box = mask.getbbox()
    if box is None:
        return
    behind = np.asarray(image.crop(box), np.float32)[np.asarray(mask.crop(box)) > 0].mean(axis=0)
    texture = _texture(rng, box[2] - box[0], box[3] - box[1], avoid=behind)
    image.paste(texture, box[:2], mask.crop(box))


def _background(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    """A cluttered background: a colour gradient, soft blobs, lines, arcs and speckle noise."""
    top, bottom = np.array(_random_colour(rng), np.float32), np.array(_random_colour(rng), np.float32)
    t = np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    base = np.broadcast_to(top * (1 - t) + bottom * t, (height, width, 3))
    image = Image.fromarray(base.astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(rng.integers(2, 6)):
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        r = rng.uniform(10, 40)
        draw.ellipse([x - r, y - r * rng.uniform(0.3, 1), x + r, y + r], fill=_random_colour(rng))
    image = image.filter(ImageFilter.GaussianBlur(radius=6))
    draw = ImageDraw.Draw(image)
    _clutter(rng, draw, width, height, count=int(rng.integers(2, 7)))
    noise = rng.normal(0, rng.uniform(2, 8), size=(height, width, 3))
    return Image.fromarray(np.clip(np.asarray(image, np.float32) + noise, 0, 255).astype(np.uint8), "RGB")


def _clutter(
    rng: np.random.Generator, draw: ImageDraw.ImageDraw, width: int, height: int, count: int
) -> None:
    """Thin lines, arcs and dots: distractors that are not any of the shape classes."""
    for _ in range(count):
        kind = rng.integers(0, 3)
        x, y = rng.uniform(0, width, size=2), rng.uniform(0, height, size=2)
        colour = _random_colour(rng)
        if kind == 0:
            draw.line([(x[0], y[0]), (x[1], y[1])], fill=colour, width=int(rng.integers(1, 4)))
        elif kind == 1:
            box = [min(x), min(y), max(x) + 4, max(y) + 4]
            draw.arc(
                box, start=float(rng.uniform(0, 360)), end=float(rng.uniform(0, 360)), fill=colour, width=2
            )
        else:
            r = rng.uniform(1, 3)
            draw.ellipse([x[0] - r, y[0] - r, x[0] + r, y[0] + r], fill=colour)


def _place(
    rng: np.random.Generator, width: int, height: int, radius: float, placed: list[tuple[float, float, float]]
) -> tuple[float, float] | None:
    """A centre for a new object that keeps earlier objects mostly visible and centres well apart."""
    for _ in range(50):
        cx = rng.uniform(radius * 0.8, width - radius * 0.8)
        cy = rng.uniform(radius * 0.8, height - radius * 0.8)
        if all(math.hypot(cx - x, cy - y) > 0.95 * (radius + r) for x, y, r in placed):
            return cx, cy
    return None


def trimap_of(pet: Image.Image) -> Image.Image:
    """Oxford-style trimap from a binary pet mask: 1 pet, 2 background, 3 a band along the outline."""
    size = 2 * BORDER_HALF_WIDTH + 1
    grown = np.asarray(pet.filter(ImageFilter.MaxFilter(size))) > 0
    shrunk = np.asarray(pet.filter(ImageFilter.MinFilter(size))) > 0
    trimap = np.full(grown.shape, TRIMAP_BACKGROUND, np.uint8)
    trimap[grown] = TRIMAP_BORDER
    trimap[shrunk] = TRIMAP_PET
    return Image.fromarray(trimap, "L")


def _radius_range(count: int, max_objects: int) -> tuple[float, float]:
    """Circumradius bounds as fractions of the shorter side: large for one-shape sets, smaller in a crowd.

    A lone shape in a set of crowds spans both, so that what trains on such sets meets one large shape
    (docs/examples/star.jpg) as well as several small ones (docs/examples/shapes.jpg).
    """
    if max_objects == 1:
        return LONE
    return CROWD if count > 1 else (CROWD[0], LONE[1])


def render_scene(rng: np.random.Generator, max_objects: int = 1) -> Scene:
    """Draw one scene with 1..max_objects shapes on clutter, with occluders, and its annotations."""
    width, height = (int(v) for v in rng.integers(MIN_SIDE, MAX_SIDE + 1, size=2))
    image = _background(rng, width, height)
    pet = Image.new("L", (width, height), 0)
    count = int(rng.integers(1, max_objects + 1))
    side = min(width, height)
    radius_range = tuple(fraction * side for fraction in _radius_range(count, max_objects))
    placed: list[tuple[float, float, float]] = []
    drawn: list[tuple[str, list[tuple[float, float]]]] = []
    for _ in range(count):
        radius = rng.uniform(*radius_range)
        centre = _place(rng, width, height, radius, placed)
        if centre is None:
            continue
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        polygon = shape_polygon(shape, *centre, radius, rng.uniform(-MAX_TILT, MAX_TILT))
        mask = Image.new("L", (width, height), 0)
        ImageDraw.Draw(mask).polygon(polygon, fill=255)
        _fill(rng, image, mask)
        if rng.uniform() < 0.3:
            ImageDraw.Draw(image).polygon(polygon, outline=_random_colour(rng))
        pet.paste(255, (0, 0), mask)
        placed.append((*centre, radius))
        drawn.append((shape, polygon))
    occluders = _occlude(rng, image, pet, placed)
    objects = tuple(_scene_object(shape, polygon, width, height, occluders) for shape, polygon in drawn)
    return Scene(image=image, trimap=trimap_of(pet), objects=objects)


def _occlude(
    rng: np.random.Generator, image: Image.Image, pet: Image.Image, placed: list[tuple[float, float, float]]
) -> Image.Image:
    """Cover part of some objects with a bar or blob; the trimap marks covered pixels as background."""
    covered = Image.new("L", image.size, 0)
    for cx, cy, radius in placed:
        if rng.uniform() > 0.35:
            continue
        angle = rng.uniform(0, 2 * math.pi)
        ox, oy = cx + 0.9 * radius * math.cos(angle), cy + 0.9 * radius * math.sin(angle)
        r = rng.uniform(0.25, 0.45) * radius
        box = [ox - r, oy - r * rng.uniform(0.4, 1.0), ox + r, oy + r]
        ImageDraw.Draw(covered).ellipse(box, fill=255)
    _fill(rng, image, covered)
    pet.paste(0, (0, 0), covered)
    return covered


def _scene_object(
    shape: str, polygon: list[tuple[float, float]], width: int, height: int, occluders: Image.Image
) -> SceneObject:
    xs, ys = [p[0] for p in polygon], [p[1] for p in polygon]
    raw = (min(xs), min(ys), max(xs), max(ys))
    box = (
        max(0, round(raw[0])),
        max(0, round(raw[1])),
        min(width - 1, round(raw[2])),
        min(height - 1, round(raw[3])),
    )
    truncated = raw[0] < 0 or raw[1] < 0 or raw[2] > width - 1 or raw[3] > height - 1
    region = np.asarray(occluders.crop(box))
    return SceneObject(shape=shape, box=box, occluded=bool(region.any()), truncated=truncated)


def write_dataset(
    out: Path, count: int, seed: int, max_objects: int = 1, test_fraction: float = 0.2, replace: bool = False
) -> Path:
    """Render `count` scenes into `out` in the Oxford-IIIT Pet layout; returns `out`.

    With `replace`, the images and annotations an earlier set left there go first, so none stay behind.
    """
    if count < 2:
        raise ValueError("count must be at least 2 (one trainval and one test image)")
    rng = np.random.default_rng(seed)
    images, trimaps, xmls = out / "images", out / "annotations" / "trimaps", out / "annotations" / "xmls"
    if replace:
        for folder in (images, out / "annotations"):
            shutil.rmtree(folder, ignore_errors=True)
    for folder in (images, trimaps, xmls):
        folder.mkdir(parents=True, exist_ok=True)
    numbers = dict.fromkeys(SHAPES, 0)
    entries: list[tuple[str, int]] = []
    for _ in tqdm(range(count), desc="drawing", unit="image", leave=False, disable=None):
        scene = render_scene(rng, max_objects)
        shape = scene.objects[0].shape
        numbers[shape] += 1
        stem = f"{shape}_{numbers[shape]}"
        scene.image.save(images / f"{stem}.jpg", quality=92)
        scene.trimap.save(trimaps / f"{stem}.png")
        write_voc_xml(
            xmls / f"{stem}.xml",
            f"{stem}.jpg",
            scene.image.size,
            [(obj.shape, obj.box, obj.occluded, obj.truncated) for obj in scene.objects],
        )
        entries.append((stem, SHAPES.index(shape) + 1))
    test = set(rng.choice(len(entries), size=max(1, round(count * test_fraction)), replace=False).tolist())
    write_list_files(out, SHAPES, entries, test)
    return out
