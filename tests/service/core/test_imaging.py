"""Decoding real image files made with Pillow: formats, modes, orientation, geometry, limits and bad input."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import pytest
from conftest import encode
from hostile import png_declaring
from PIL import ExifTags, Image

from service.core.errors import (
    CorruptImageError,
    EmptyImageError,
    ImageError,
    ImageTooLargeError,
    UnsupportedImageError,
)
from service.core.imaging import (
    LETTERBOX_FILL,
    Geometry,
    ImageLimits,
    decode_upright,
    exif_orientation,
    open_image,
    prepare_image,
)

LIMITS = ImageLimits(max_bytes=50_000_000, max_pixels=40_000_000)
RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)
Colour = tuple[float, float, float]


def halves(mode: str, left: object, right: object, size: tuple[int, int] = (40, 20)) -> Image.Image:
    """A `size` image in `mode` whose left half is `left` and right half `right`."""
    image = Image.new(mode, size, left)
    image.paste(right, (size[0] // 2, 0, size[0], size[1]))
    return image


def deep_halves(dtype: str, left: int, right: int) -> Image.Image:
    """A 40x20 16-bit or 32-bit grey image from numpy (Pillow's paste truncates 16-bit fill values)."""
    values = np.full((20, 40), left, dtype=dtype)
    values[:, 20:] = right
    return Image.fromarray(values)


def palette_halves(transparent_right: bool = False) -> Image.Image:
    image = halves("P", 0, 1)
    image.putpalette([*RED, *BLUE])
    if transparent_right:
        image.info["transparency"] = 1
    return image


def luma(colour: Colour) -> float:
    return colour[0] * 0.299 + colour[1] * 0.587 + colour[2] * 0.114


def prepare(data: bytes, width: int, height: int, channels: int = 3, **kwargs: object):
    return prepare_image(
        data, width=width, height=height, channels=channels, resize="stretch", limits=LIMITS, **kwargs
    )


def exif_jpeg(image: Image.Image, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = orientation
    return encode(image, "JPEG", quality=95, subsampling=0, exif=exif.tobytes())


# (format, save options, image maker, expected left RGB, expected right RGB, tolerance)
CASES: dict[str, tuple[str, dict, Callable[[], Image.Image], Colour, Colour, float]] = {
    "png-1": ("PNG", {}, lambda: halves("1", 0, 1), (0, 0, 0), WHITE, 0),
    "png-L": ("PNG", {}, lambda: halves("L", 50, 200), (50,) * 3, (200,) * 3, 0),
    "png-LA": ("PNG", {}, lambda: halves("LA", (50, 255), (50, 0)), (50,) * 3, WHITE, 0),
    "png-P": ("PNG", {}, palette_halves, RED, BLUE, 0),
    "png-P-transparent": ("PNG", {}, lambda: palette_halves(True), RED, WHITE, 0),
    "png-RGB": ("PNG", {}, lambda: halves("RGB", RED, BLUE), RED, BLUE, 0),
    "png-RGBA": ("PNG", {}, lambda: halves("RGBA", (*RED, 255), (*BLUE, 0)), RED, WHITE, 0),
    "png-I;16": ("PNG", {}, lambda: deep_halves("<u2", 1028, 60000), (4,) * 3, (60000 / 257,) * 3, 0.5),
    "jpeg-L": ("JPEG", {"quality": 95}, lambda: halves("L", 50, 200), (50,) * 3, (200,) * 3, 4),
    "jpeg-RGB": ("JPEG", {"quality": 95}, lambda: halves("RGB", RED, BLUE), RED, BLUE, 8),
    "jpeg-CMYK": (
        "JPEG",
        {"quality": 95},
        lambda: halves("CMYK", (0, 255, 255, 0), (255, 255, 0, 0)),
        RED,
        BLUE,
        8,
    ),
    "webp-RGB": ("WEBP", {"lossless": True}, lambda: halves("RGB", RED, BLUE), RED, BLUE, 0),
    "webp-RGBA": ("WEBP", {"lossless": True}, lambda: halves("RGBA", (*RED, 255), (*BLUE, 0)), RED, WHITE, 0),
    "bmp-1": ("BMP", {}, lambda: halves("1", 0, 1), (0, 0, 0), WHITE, 0),
    "bmp-L": ("BMP", {}, lambda: halves("L", 50, 200), (50,) * 3, (200,) * 3, 0),
    "bmp-P": ("BMP", {}, palette_halves, RED, BLUE, 0),
    "bmp-RGB": ("BMP", {}, lambda: halves("RGB", RED, BLUE), RED, BLUE, 0),
    "gif-P": ("GIF", {}, palette_halves, RED, BLUE, 0),
    "gif-P-transparent": ("GIF", {}, lambda: palette_halves(True), RED, WHITE, 0),
    "tiff-1": ("TIFF", {}, lambda: halves("1", 0, 1), (0, 0, 0), WHITE, 0),
    "tiff-L": ("TIFF", {}, lambda: halves("L", 50, 200), (50,) * 3, (200,) * 3, 0),
    "tiff-LA": ("TIFF", {}, lambda: halves("LA", (50, 255), (50, 0)), (50,) * 3, WHITE, 0),
    "tiff-P": ("TIFF", {}, palette_halves, RED, BLUE, 0),
    "tiff-PA": ("TIFF", {}, lambda: halves("PA", (0, 255), (1, 0)), (0, 0, 0), WHITE, 0),
    "tiff-RGB": ("TIFF", {}, lambda: halves("RGB", RED, BLUE), RED, BLUE, 0),
    "tiff-RGBA": ("TIFF", {}, lambda: halves("RGBA", (*RED, 255), (*BLUE, 0)), RED, WHITE, 0),
    "tiff-CMYK": ("TIFF", {}, lambda: halves("CMYK", (0, 255, 255, 0), (255, 255, 0, 0)), RED, BLUE, 0),
    "tiff-YCbCr": ("TIFF", {}, lambda: halves("RGB", RED, BLUE).convert("YCbCr"), RED, BLUE, 3),
    "tiff-I": ("TIFF", {}, lambda: halves("I", 100, 200), (100,) * 3, (200,) * 3, 0),
    "tiff-I-16bit-range": ("TIFF", {}, lambda: halves("I", 1028, 60000), (4,) * 3, (60000 / 257,) * 3, 0.5),
    "tiff-I;16": ("TIFF", {}, lambda: deep_halves("<u2", 1028, 60000), (4,) * 3, (60000 / 257,) * 3, 0.5),
    "tiff-I;16B": ("TIFF", {}, lambda: deep_halves(">u2", 1028, 60000), (4,) * 3, (60000 / 257,) * 3, 0.5),
    "tiff-F": ("TIFF", {}, lambda: halves("F", 0.2, 0.8), (51,) * 3, (204,) * 3, 0.01),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
@pytest.mark.parametrize("channels", [3, 1])
def test_every_format_and_mode_decodes_to_the_expected_pixels(case, channels: int) -> None:
    fmt, options, make, left, right, tolerance = case
    source = make()
    data = encode(source, fmt, **options)
    opened = Image.open(io.BytesIO(data))
    assert (opened.format, opened.mode) == (fmt, source.mode)
    prepared = prepare(data, 8, 4, channels)
    assert prepared.pixels.shape == (4, 8, channels)
    assert prepared.pixels.dtype == np.float32
    expected_left = left if channels == 3 else (luma(left),)
    expected_right = right if channels == 3 else (luma(right),)
    # Columns 1 and 6 of 8 sit well inside each half, away from the resize blend at the seam.
    np.testing.assert_allclose(prepared.pixels[:, 1], np.tile(expected_left, (4, 1)), atol=tolerance + 1)
    np.testing.assert_allclose(prepared.pixels[:, 6], np.tile(expected_right, (4, 1)), atol=tolerance + 1)
    assert prepared.geometry.original_width == 40
    assert prepared.geometry.original_height == 20


def test_gif_uses_the_first_frame() -> None:
    first = palette_halves()
    second = halves("RGB", (0, 255, 0), (0, 255, 0)).convert("P")
    data = encode(first, "GIF", save_all=True, append_images=[second], duration=100)
    assert Image.open(io.BytesIO(data)).n_frames == 2
    pixels = prepare(data, 8, 4).pixels
    np.testing.assert_array_equal(pixels[0, 1], RED)
    np.testing.assert_array_equal(pixels[0, 6], BLUE)


def test_sixteen_bit_png_keeps_relative_brightness_without_clipping() -> None:
    ramp = np.linspace(0, 65535, 16, dtype=np.uint16).reshape(1, 16).repeat(4, axis=0)
    data = encode(Image.fromarray(ramp), "PNG")
    assert Image.open(io.BytesIO(data)).mode == "I;16"
    row = prepare(data, 16, 4, channels=1).pixels[0, :, 0]
    np.testing.assert_allclose(row, ramp[0] / 257.0, atol=1e-3)
    assert np.all(np.diff(row) > 0)
    assert row[-1] == pytest.approx(255.0)


def quadrant_image() -> Image.Image:
    """60x40 image: a red top-left block, green elsewhere on top, blue below: every rotation is distinct."""
    image = Image.new("RGB", (60, 40), (0, 0, 255))
    image.paste((0, 255, 0), (0, 0, 60, 20))
    image.paste(RED, (0, 0, 20, 20))
    return image


@pytest.mark.parametrize(
    ("orientation", "transpose"), [(6, Image.Transpose.ROTATE_270), (8, Image.Transpose.ROTATE_90)]
)
def test_exif_rotated_jpeg_is_served_upright(orientation: int, transpose: Image.Transpose) -> None:
    stored = quadrant_image()
    data = exif_jpeg(stored, orientation)
    assert exif_orientation(Image.open(io.BytesIO(data))) == orientation
    upright = np.asarray(stored.transpose(transpose), dtype=np.float32)
    prepared = prepare(data, 40, 60, preview_side=100)
    assert (prepared.geometry.original_width, prepared.geometry.original_height) == (40, 60)
    assert prepared.preview is not None
    assert prepared.preview.size == (40, 60)
    assert prepared.pixels.shape == (60, 40, 3)
    assert np.abs(prepared.pixels - upright).mean() < 3
    for y, x in [(5, 5), (5, 35), (55, 5), (55, 35), (30, 20)]:
        np.testing.assert_allclose(prepared.pixels[y, x], upright[y, x], atol=12)


def test_jpeg_draft_decodes_a_big_photo_at_reduced_scale() -> None:
    data = encode(halves("RGB", RED, BLUE, size=(4000, 3000)), "JPEG", quality=80)
    image = open_image(data, LIMITS)
    decoded = decode_upright(image, at_least=(64, 64))
    # 3000 // 64 = 46 allows the 1/8 DCT scale: 500x375, still >= 64x64.
    assert decoded.size == (500, 375)
    prepared = prepare(data, 64, 64)
    np.testing.assert_allclose(prepared.pixels[32, 5], RED, atol=8)
    np.testing.assert_allclose(prepared.pixels[32, 58], BLUE, atol=8)
    assert (prepared.geometry.original_width, prepared.geometry.original_height) == (4000, 3000)


def test_jpeg_draft_target_accounts_for_exif_rotation() -> None:
    data = exif_jpeg(Image.new("RGB", (800, 400), RED), 6)
    # Upright the photo is 400x800; a 50x100 input needs 100x50 stored pixels: the 1/8 scale fits exactly.
    decoded = decode_upright(open_image(data, LIMITS), orientation=6, at_least=(50, 100))
    assert decoded.size == (50, 100)
    prepared = prepare(data, 50, 100)
    assert (prepared.geometry.original_width, prepared.geometry.original_height) == (400, 800)


def test_draft_greyscale_decode_and_a_preview_bounded_by_its_side() -> None:
    data = encode(halves("RGB", RED, BLUE, size=(1600, 1200)), "JPEG", quality=90)
    grey = decode_upright(open_image(data, LIMITS), at_least=(64, 48), grey=True)
    assert (grey.size, grey.mode) == ((200, 150), "L")
    prepared = prepare(data, 64, 48, preview_side=400)
    assert prepared.preview is not None
    assert (prepared.preview.size, prepared.preview.mode) == ((400, 300), "RGB")
    np.testing.assert_allclose(np.asarray(prepared.preview)[150, 20], RED, atol=8)
    np.testing.assert_allclose(np.asarray(prepared.preview)[150, 380], BLUE, atol=8)


def test_grey_upload_for_a_colour_model_matches_its_rgb_copy() -> None:
    grey = Image.fromarray(np.arange(120 * 90, dtype=np.uint32).reshape(90, 120).astype(np.uint8) % 251)
    from_grey = prepare(encode(grey, "PNG"), 32, 32)
    from_rgb = prepare(encode(grey.convert("RGB"), "PNG"), 32, 32)
    np.testing.assert_array_equal(from_grey.pixels, from_rgb.pixels)


def test_letterbox_pads_and_maps_boxes_back_exactly() -> None:
    data = encode(Image.new("RGB", (200, 100), RED), "PNG")
    prepared = prepare_image(data, width=64, height=64, channels=3, resize="letterbox", limits=LIMITS)
    geometry = prepared.geometry
    assert geometry == Geometry(200, 100, 64, 64, 0.32, 0.32, 0, 16)
    assert geometry.content_region() == (0, 16, 64, 48)
    assert np.all(prepared.pixels[:16] == LETTERBOX_FILL)
    assert np.all(prepared.pixels[48:] == LETTERBOX_FILL)
    assert np.all(prepared.pixels[16:48] == RED)
    boxes = np.array([[0, 16 / 64, 1, 48 / 64], [0.5, 0.5, 0.75, 40 / 64], [-0.5, 0.0, 2.0, 0.1]])
    np.testing.assert_array_equal(
        geometry.boxes_to_original(boxes), [[0, 0, 200, 100], [100, 50, 150, 75], [0, 0, 200, 0]]
    )


@pytest.mark.parametrize(
    "image",
    [Image.new("L", (20, 10), 200), deep_halves("<u2", 51400, 51400).resize((20, 10))],
    ids=["L", "I;16"],
)
def test_letterbox_pads_greyscale_and_high_bit_inputs(image: Image.Image) -> None:
    prepared = prepare_image(
        encode(image, "PNG"), width=8, height=8, channels=1, resize="letterbox", limits=LIMITS
    )
    column = prepared.pixels[:, 3, 0]
    np.testing.assert_array_equal(column, [LETTERBOX_FILL] * 2 + [200] * 4 + [LETTERBOX_FILL] * 2)


def test_letterbox_of_a_tall_image_pads_left_and_right() -> None:
    geometry = Geometry.plan(100, 400, 64, 64, "letterbox")
    assert geometry.content_region() == (24, 0, 40, 64)
    np.testing.assert_array_equal(
        geometry.boxes_to_original(np.array([[24 / 64, 0, 40 / 64, 1]])), [[0, 0, 100, 400]]
    )


def test_stretch_geometry_scales_each_axis() -> None:
    data = encode(Image.new("L", (200, 100), 90), "PNG")
    prepared = prepare(data, 64, 16, channels=1)
    geometry = prepared.geometry
    assert geometry == Geometry(200, 100, 64, 16, 0.32, 0.16, 0, 0)
    assert geometry.content_region() == (0, 0, 64, 16)
    assert np.all(prepared.pixels == 90)
    np.testing.assert_array_equal(
        geometry.boxes_to_original(np.array([[0.5, 0.5, 1, 1], [0.25, 0, 0.5, 0.25]])),
        [[100, 50, 200, 100], [50, 0, 100, 25]],
    )


def test_boxes_to_original_rejects_a_wrong_shape() -> None:
    with pytest.raises(ValueError, match=r"\[K, 4\]"):
        Geometry.plan(10, 10, 10, 10, "stretch").boxes_to_original(np.zeros((3, 5)))


def test_error_classes_carry_their_codes() -> None:
    expected = {
        EmptyImageError: "empty_image",
        UnsupportedImageError: "unsupported_image",
        CorruptImageError: "corrupt_image",
        ImageTooLargeError: "image_too_large",
    }
    for error, code in expected.items():
        assert issubclass(error, ImageError)
        assert error.code == code


def test_empty_data_is_refused() -> None:
    with pytest.raises(EmptyImageError, match="empty"):
        prepare(b"", 8, 8)


def test_byte_limit_is_enforced() -> None:
    data = encode(Image.new("RGB", (32, 32), RED), "BMP")
    limits = ImageLimits(max_bytes=len(data) - 1, max_pixels=10**6)
    with pytest.raises(ImageTooLargeError, match=f"{len(data)} bytes"):
        prepare_image(data, width=8, height=8, channels=3, resize="stretch", limits=limits)
    exact = ImageLimits(max_bytes=len(data), max_pixels=10**6)
    assert prepare_image(
        data, width=8, height=8, channels=3, resize="stretch", limits=exact
    ).pixels.shape == (8, 8, 3)


def test_a_png_declaring_30000x30000_is_refused_as_too_large() -> None:
    data = png_declaring(30000, 30000)
    assert len(data) < 200
    with pytest.raises(ImageTooLargeError):
        prepare(data, 64, 64)


def test_pixel_limit_is_checked_from_the_header_before_decoding() -> None:
    data = png_declaring(5000, 5000)
    small = ImageLimits(max_bytes=10**6, max_pixels=1_000_000)
    with pytest.raises(ImageTooLargeError, match="5000x5000"):
        prepare_image(data, width=8, height=8, channels=3, resize="stretch", limits=small)
    # The file holds almost no pixel data: decoding it fails, so the refusal above came before any decoding.
    with pytest.raises(CorruptImageError):
        prepare(data, 8, 8)


def test_random_bytes_are_not_an_image() -> None:
    data = np.random.default_rng(7).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    with pytest.raises(UnsupportedImageError, match="not an image"):
        prepare(data, 8, 8)


def test_a_text_file_is_not_an_image() -> None:
    with pytest.raises(UnsupportedImageError):
        prepare(b"BMW and other words in a plain text file.\n" * 20, 8, 8)


@pytest.mark.parametrize("fmt", ["PPM", "ICO", "TGA"])
def test_real_images_in_other_formats_are_unsupported(fmt: str) -> None:
    data = encode(Image.new("RGB", (16, 16), RED), fmt)
    with pytest.raises(UnsupportedImageError, match="JPEG, PNG, WebP, BMP, GIF or TIFF"):
        prepare(data, 8, 8)


def test_truncated_jpeg_is_corrupt() -> None:
    data = encode(quadrant_image().resize((300, 200)), "JPEG", quality=90)
    with pytest.raises(CorruptImageError, match="truncated or damaged"):
        prepare(data[: len(data) // 2], 8, 8)


def test_truncated_png_is_corrupt() -> None:
    noise = np.random.default_rng(3).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    data = encode(Image.fromarray(noise), "PNG")
    with pytest.raises(CorruptImageError):
        prepare(data[: len(data) // 2], 8, 8)


def test_a_damaged_header_of_a_supported_format_is_corrupt_not_unsupported() -> None:
    data = encode(Image.new("RGB", (16, 16), RED), "PNG")
    with pytest.raises(CorruptImageError, match="header"):
        prepare(data[:8] + b"\0" * 40, 8, 8)


def test_channels_other_than_one_or_three_are_a_programming_error() -> None:
    with pytest.raises(ValueError, match="channels"):
        prepare(encode(Image.new("RGB", (4, 4)), "PNG"), 4, 4, channels=4)


TRUNCATION_FORMATS = [
    ("PNG", {}),
    ("JPEG", {}),
    ("JPEG", {"progressive": True}),
    ("GIF", {}),
    ("WEBP", {"lossless": True}),
    ("BMP", {}),
    ("TIFF", {"compression": "tiff_lzw"}),
]


@pytest.mark.parametrize(("fmt", "options"), TRUNCATION_FORMATS, ids=lambda value: str(value))
@pytest.mark.parametrize("size", [(1, 64), (64, 1), (17, 13), (300, 2)], ids=str)
@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_a_file_cut_short_is_refused_unless_only_its_trailer_is_gone(
    fmt: str, options: dict, size: tuple[int, int], mode: str
) -> None:
    noise = np.random.default_rng(7).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    data = encode(Image.fromarray(noise).convert(mode), fmt, **options)
    whole = prepare(data, 8, 8).pixels
    for keep in sorted({len(data) // 3, len(data) * 2 // 3, len(data) - 12, len(data) - 2, len(data) - 1}):
        try:
            cut = prepare(data[:keep], 8, 8)
        except (CorruptImageError, UnsupportedImageError):
            continue
        # Accepted only when the bytes lost held no pixels (a PNG's IEND, a JPEG's EOI, a GIF's trailer).
        np.testing.assert_array_equal(cut.pixels, whole, err_msg=f"{keep} of {len(data)} bytes")
