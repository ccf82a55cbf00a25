"""Image bytes -> model input: safe decoding with Pillow, EXIF orientation, mode conversion and resizing.

Choices a client can observe:
- transparency is composited over white (a transparent background reads as paper, not as black);
- 16-bit and 32-bit integer or float pixels are scaled to 0..255, never clipped (see `_high_bit_to_float`);
- `letterbox` keeps the aspect ratio, centres the content and pads with grey 114 (the YOLO convention);
- `stretch` and `letterbox` resize with Pillow's bilinear filter (antialiased when shrinking).
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import ExifTags, Image, ImageFile

from service.core.errors import CorruptImageError, EmptyImageError, ImageTooLargeError, UnsupportedImageError
from service.core.inspection import inspect

if TYPE_CHECKING:  # a type only: decode workers need not import pydantic (16 MiB each)
    from service.api.terms import ResizeMode

# A multi-picture JPEG (format "MPO") opens through the JPEG entry.
SUPPORTED_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")
LETTERBOX_FILL = 114
WHITE = 255
_HUMAN_FORMATS = "JPEG, PNG, WebP, BMP, GIF or TIFF"
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, struct.error, EOFError, IndexError, TypeError, KeyError)
_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"II*\x00", b"MM\x00*")
_ROTATED = frozenset({5, 6, 7, 8})
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_ALPHA_MODES = frozenset({"LA", "La", "PA", "RGBA", "RGBa"})
_HIGH_BIT_MODES = frozenset({"I", "F"})
# Overlays are for people to look at: drawn on a copy of the photo at most this many pixels on its longer
# side, so a 36-megapixel upload never needs a full-size RGB copy (mask and color PNGs keep the full size).
OVERLAY_MAX_SIDE = 1024
# Modes a preview is shrunk in before conversion, so no full-size RGB copy is made.
_RESIZABLE_MODES = frozenset({"L", "LA", "RGB", "RGBA", "I", "F"})


@dataclass(frozen=True)
class ImageLimits:
    """Per-image limits: encoded size in bytes and declared width x height."""

    max_bytes: int
    max_pixels: int


@dataclass(frozen=True)
class Geometry:
    """How the upright original image maps onto the model input (scale, then letterbox padding)."""

    original_width: int
    original_height: int
    input_width: int
    input_height: int
    scale_x: float
    scale_y: float
    pad_x: int
    pad_y: int

    @classmethod
    def plan(
        cls,
        original_width: int,
        original_height: int,
        input_width: int,
        input_height: int,
        resize: ResizeMode,
    ) -> Geometry:
        """The geometry that `resize` gives an original of this size at this model input size."""
        if resize == "stretch":
            content_width, content_height = input_width, input_height
        elif resize == "letterbox":
            scale = min(input_width / original_width, input_height / original_height)
            content_width = min(input_width, max(1, round(original_width * scale)))
            content_height = min(input_height, max(1, round(original_height * scale)))
        else:
            raise ValueError(f"unknown resize mode {resize!r}; expected 'stretch' or 'letterbox'")
        return cls(
            original_width=original_width,
            original_height=original_height,
            input_width=input_width,
            input_height=input_height,
            scale_x=content_width / original_width,
            scale_y=content_height / original_height,
            pad_x=(input_width - content_width) // 2,
            pad_y=(input_height - content_height) // 2,
        )

    @property
    def content_size(self) -> tuple[int, int]:
        """Width and height, in model-input pixels, of the image content without padding."""
        return round(self.original_width * self.scale_x), round(self.original_height * self.scale_y)

    def content_region(self) -> tuple[int, int, int, int]:
        """Left, top, right, bottom of the real image content in model-input pixels."""
        width, height = self.content_size
        return self.pad_x, self.pad_y, self.pad_x + width, self.pad_y + height

    def content_region_at(self, width: int, height: int) -> tuple[int, int, int, int]:
        """The content region on a model output of this size (a mask, a feature map), at least one cell."""
        left, top, right, bottom = self.content_region()
        if (width, height) == (self.input_width, self.input_height):
            return left, top, right, bottom
        sx, sy = width / self.input_width, height / self.input_height
        x0, y0 = round(left * sx), round(top * sy)
        return x0, y0, max(round(right * sx), x0 + 1), max(round(bottom * sy), y0 + 1)

    def boxes_to_original(self, boxes: np.ndarray) -> np.ndarray:
        """Normalised model-input boxes [K, 4] (x_min, y_min, x_max, y_max) -> original pixels, clipped."""
        boxes = np.asarray(boxes, dtype=np.float64)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f"boxes must have shape [K, 4], got {list(boxes.shape)}")
        content_width, content_height = self.content_size
        # Multiply by original/content rather than divide by scale: exact for boxes on pixel edges.
        mapped = boxes * ([self.input_width, self.input_height] * 2)
        mapped -= [self.pad_x, self.pad_y] * 2
        mapped *= [self.original_width, self.original_height] * 2
        mapped /= [content_width, content_height] * 2
        # Ufuncs rather than np.clip, whose Python wrappers cost more than the arithmetic here.
        np.maximum(mapped, 0.0, out=mapped)
        np.minimum(mapped, [self.original_width, self.original_height] * 2, out=mapped)
        return mapped


@dataclass(frozen=True)
class PreparedImage:
    """A decoded upload ready for the model, with what is needed to map answers back onto it."""

    pixels: np.ndarray  # float32 [height, width, channels], values 0..255
    geometry: Geometry
    preview: Image.Image | None  # upright RGB copy within a bounded box, only when asked for (overlays)
    # The mean 0..255 of `pixels` without letterbox padding, for drift monitoring: worked out where the pixels
    # are made (a decode worker process), so the serving process, whose event loop shares one GIL with its
    # run threads, never spends the ~10 us.
    brightness: float


def prepare_image(
    data: bytes,
    *,
    width: int,
    height: int,
    channels: int,
    resize: ResizeMode,
    limits: ImageLimits,
    preview_side: int | None = None,
) -> PreparedImage:
    """Decode `data` within `limits` and turn it into a float32 [height, width, channels] model input."""
    return decode_for_model(
        open_image(data, limits),
        width=width,
        height=height,
        channels=channels,
        resize=resize,
        preview_side=preview_side,
    )


def decode_for_model(
    image: ImageFile.ImageFile,
    *,
    width: int,
    height: int,
    channels: int,
    resize: ResizeMode,
    preview_side: int | None = None,
) -> PreparedImage:
    """An opened image (`open_image`) as model input; with `preview_side`, also an upright RGB copy whose
    longer side is at most that many pixels."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    orientation = exif_orientation(image)
    stored_width, stored_height = image.size
    upright_width, upright_height = (
        (stored_height, stored_width) if orientation in _ROTATED else (stored_width, stored_height)
    )
    geometry = Geometry.plan(upright_width, upright_height, width, height, resize)
    at_least = geometry.content_size
    if preview_side is not None:
        preview_size = _fit_within(upright_width, upright_height, preview_side)
        at_least = (max(at_least[0], preview_size[0]), max(at_least[1], preview_size[1]))
    upright = decode_upright(image, orientation=orientation, at_least=at_least, grey=channels == 1)
    preview = None if preview_side is None else _preview(upright, preview_side)
    if upright.mode == "L" and channels == 3:
        # Resized while still one channel, then tripled: the full-size copy costs a third of the memory.
        fitted = fit_to_input(upright, geometry).convert("RGB")
    else:
        fitted = fit_to_input(to_model_mode(upright, channels), geometry)
    pixels = np.asarray(fitted).astype(np.float32)
    if pixels.ndim == 2:
        pixels = pixels[:, :, np.newaxis]
    if pixels.shape[2] != channels:
        pixels = np.repeat(pixels, channels, axis=2)
    left, top, right, bottom = geometry.content_region()
    brightness = float(pixels[top:bottom, left:right].mean())
    return PreparedImage(pixels=pixels, geometry=geometry, preview=preview, brightness=brightness)


def open_image(data: bytes, limits: ImageLimits) -> ImageFile.ImageFile:
    """Open `data` lazily (header only) and refuse it if empty, too big or not a supported format."""
    if not data:
        raise EmptyImageError("the image is empty (0 bytes)")
    if len(data) > limits.max_bytes:
        raise ImageTooLargeError(
            f"the image is {len(data)} bytes, over the limit of {limits.max_bytes} bytes"
        )
    inspect(data)
    try:
        image = Image.open(io.BytesIO(data), formats=SUPPORTED_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLargeError(
            f"the image has too many pixels ({exc}); the limit is {limits.max_pixels} pixels"
        ) from None
    except _DECODE_ERRORS as exc:
        # A plugin may accept a loose signature ("BM") and then fail: only a real signature means corrupt.
        if _has_supported_signature(data):
            raise CorruptImageError(f"the image header is damaged and cannot be read: {exc}") from None
        raise UnsupportedImageError(f"not an image, or not one of {_HUMAN_FORMATS}") from None
    image_width, image_height = image.size
    if image_width * image_height > limits.max_pixels:
        raise ImageTooLargeError(
            f"the image is {image_width}x{image_height} = {image_width * image_height} pixels, "
            f"over the limit of {limits.max_pixels} pixels"
        )
    return image


def exif_orientation(image: Image.Image) -> int:
    """The EXIF orientation (1..8) of `image`, 1 when absent or invalid."""
    try:
        orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    except _DECODE_ERRORS:
        return 1
    return orientation if orientation in _TRANSPOSE else 1


def decode_upright(
    image: ImageFile.ImageFile,
    *,
    orientation: int = 1,
    at_least: tuple[int, int] | None = None,
    grey: bool = False,
) -> Image.Image:
    """Decode the first frame upright; a JPEG at the smallest DCT scale still >= `at_least` (upright w, h)."""
    if at_least is not None and image.format in ("JPEG", "MPO"):
        stored_target = at_least[::-1] if orientation in _ROTATED else at_least
        # Decoding at 1/2, 1/4 or 1/8 scale skips most of the IDCT work for a photo shrunk to model size.
        image.draft("L" if grey else None, stored_target)
    try:
        image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLargeError(f"the image has too many pixels: {exc}") from None
    except _DECODE_ERRORS as exc:
        raise CorruptImageError(f"the {image.format} image is truncated or damaged: {exc}") from None
    return upright(image, orientation)


def upright(image: Image.Image, orientation: int) -> Image.Image:
    """`image` turned as EXIF `orientation` (1..8) says: a photo, or an annotation drawn on its pixels."""
    method = _TRANSPOSE.get(orientation)
    return image if method is None else image.transpose(method)


def to_model_mode(image: Image.Image, channels: int) -> Image.Image:
    """`image` as RGB (3 channels) or L (1), alpha over white; high-bit grey as F 0..255 either way."""
    target = "RGB" if channels == 3 else "L"
    mode = image.mode
    if mode.startswith("I;16") or mode in _HIGH_BIT_MODES:
        # Kept as float through the resize so 16-bit precision is not rounded away first.
        return _high_bit_to_float(image)
    if mode in _ALPHA_MODES or "transparency" in image.info:
        return _flatten_over_white(image, target)
    if mode == target:
        return image
    try:
        return image.convert(target)
    except ValueError:
        # Pillow converts a few colour spaces (LAB) to RGB only.
        return image.convert("RGB").convert(target)


def fit_to_input(image: Image.Image, geometry: Geometry) -> Image.Image:
    """Resize to the content size of `geometry`, then pad to the model input size when letterboxing."""
    content_size = geometry.content_size
    if image.size != content_size:
        image = image.resize(content_size, Image.Resampling.BILINEAR)
    input_size = (geometry.input_width, geometry.input_height)
    if content_size == input_size:
        return image
    fill: float | tuple[int, ...] = (
        float(LETTERBOX_FILL) if image.mode == "F" else (LETTERBOX_FILL,) * len(image.getbands())
    )
    canvas = Image.new(image.mode, input_size, fill)
    canvas.paste(image, (geometry.pad_x, geometry.pad_y))
    return canvas


def _high_bit_to_float(image: Image.Image) -> Image.Image:
    """16/32-bit integer or float grey -> float 0..255, scaled so relative brightness survives.

    16-bit modes divide by 257 (65535 -> 255). For I and F the values decide: already 0..255 stays,
    0..1 floats are multiplied by 255, up to 65535 divides by 257, anything wider is min-max stretched.
    """
    values = np.asarray(image).astype(np.float32)
    if image.mode.startswith("I;16"):
        return Image.fromarray(values / 257.0)
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
    if low >= 0 and high <= 1 and image.mode == "F":
        values = values * 255.0
    elif low >= 0 and high <= 65535 and high > 255:
        values = values / 257.0
    elif low < 0 or high > 65535:
        values = (values - low) * (255.0 / (high - low))
    return Image.fromarray(np.nan_to_num(values, nan=0.0, posinf=255.0, neginf=0.0))


def _fit_within(width: int, height: int, side: int) -> tuple[int, int]:
    """`width` x `height` scaled down (never up) so the longer side is at most `side`."""
    scale = min(1.0, side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _preview(upright: Image.Image, side: int) -> Image.Image:
    size = _fit_within(*upright.size, side)
    if upright.mode in _RESIZABLE_MODES and size != upright.size:
        upright = upright.resize(size, Image.Resampling.BILINEAR)
    flat = to_model_mode(upright, 3)
    flat = flat if flat.mode == "RGB" else flat.convert("RGB")
    return flat if flat.size == size else flat.resize(size, Image.Resampling.BILINEAR)


def _flatten_over_white(image: Image.Image, target: str) -> Image.Image:
    rgba = image.convert("RGBA")
    flat = Image.new("RGB", rgba.size, (WHITE, WHITE, WHITE))
    flat.paste(rgba, mask=rgba.getchannel("A"))
    return flat if target == "RGB" else flat.convert(target)


def _has_supported_signature(data: bytes) -> bool:
    if data.startswith(_SIGNATURES):
        return True
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return True
    # "BM" alone is too common in text; the reserved header words of a BMP are zero.
    return data[:2] == b"BM" and data[6:10] == b"\0\0\0\0"
