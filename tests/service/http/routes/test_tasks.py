"""Exact answers from /classify, /detect and /segment over a live server with the hand-built test models."""

from __future__ import annotations

import base64
import io

import httpx
import numpy as np
import pytest
from conftest import encode, solid
from PIL import Image

RED = (255, 0, 0)
BLUE = (0, 0, 255)
WHITE, GREY, BLACK = 255, 128, 0


def bands(size: tuple[int, int] = (64, 32), mode: str = "L") -> Image.Image:
    """White, mid-grey and black vertical bands at x < W/4, W/4 <= x < W/2 and x >= W/2."""
    width, height = size
    pixels = np.full((height, width), BLACK, dtype=np.uint8)
    pixels[:, : width // 4] = WHITE
    pixels[:, width // 4 : width // 2] = GREY
    return Image.fromarray(pixels, "L").convert(mode)


def expected_trimap(size: tuple[int, int] = (64, 32)) -> np.ndarray:
    width, height = size
    mask = np.full((height, width), 2, dtype=np.uint8)
    mask[:, : width // 4] = 1
    mask[:, width // 4 : width // 2] = 3
    return mask


def sixteen_bit(levels: np.ndarray) -> bytes:
    """A 16-bit greyscale PNG whose 8-bit levels are `levels` scaled to the full 0..65535 range."""
    image = Image.fromarray(levels.astype(np.uint16) * 257)
    assert image.mode == "I;16"
    return encode(image, "PNG")


def cmyk_jpeg(image: Image.Image) -> bytes:
    return encode(image.convert("CMYK"), "JPEG", quality=98)


def palette(image: Image.Image) -> bytes:
    return encode(image.convert("RGB").convert("P", palette=Image.Palette.ADAPTIVE, colors=8), "PNG")


def post(client: httpx.Client, path: str, files: list[bytes], **params: object) -> httpx.Response:
    return client.post(
        path, params=params, files=[("image", (f"{i}.img", data)) for i, data in enumerate(files)]
    )


def top_label(response: httpx.Response, index: int = 0) -> str:
    assert response.status_code == 200, response.text
    return response.json()["results"][index]["predictions"][0]["label"]


RED_INPUTS = {
    "jpeg": lambda: encode(solid(RED), "JPEG", quality=95),
    "png": lambda: encode(solid(RED), "PNG"),
    "webp": lambda: encode(solid(RED), "WEBP", quality=90),
    "bmp": lambda: encode(solid(RED), "BMP"),
    "gif": lambda: encode(solid(RED), "GIF"),
    "tiff": lambda: encode(solid(RED), "TIFF"),
    "rgba": lambda: encode(solid((*RED, 255), mode="RGBA"), "PNG"),
    "palette": lambda: palette(solid(RED)),
    "cmyk-jpeg": lambda: cmyk_jpeg(solid(RED)),
}


@pytest.mark.parametrize("kind", sorted(RED_INPUTS))
def test_classify_red_in_every_format_and_mode(client: httpx.Client, kind: str) -> None:
    response = post(client, "/classify", [RED_INPUTS[kind]()])
    assert top_label(response) == "red"
    assert response.json()["model"] == {"name": "colours", "version": 2}
    assert response.json()["results"][0]["image"] == {"width": 64, "height": 32}


@pytest.mark.parametrize(
    ("kind", "data", "expected"),
    [
        ("grey-png-white", lambda: encode(solid(230, mode="L"), "PNG"), "bright"),
        ("grey-jpeg-black", lambda: encode(solid(20, mode="L"), "JPEG"), "dark"),
        ("16-bit-bright", lambda: sixteen_bit(np.full((32, 64), 200)), "bright"),
        ("16-bit-dark", lambda: sixteen_bit(np.full((32, 64), 60)), "dark"),
        ("la", lambda: encode(solid((230, 255), mode="LA"), "PNG"), "bright"),
        ("rgb-to-grey", lambda: encode(solid((240, 240, 240)), "PNG"), "bright"),
    ],
)
def test_classify_greyscale_model(client: httpx.Client, kind: str, data, expected: str) -> None:
    assert top_label(post(client, "/classify", [data()], model="brightness")) == expected


def test_greyscale_into_colour_model_has_no_favourite(client: httpx.Client) -> None:
    response = post(client, "/classify", [encode(solid(128, mode="L"), "PNG")], top_k=3)
    probabilities = [p["probability"] for p in response.json()["results"][0]["predictions"]]
    assert probabilities == pytest.approx([1 / 3] * 3, abs=1e-6)


def test_classify_batch_answers_in_order(client: httpx.Client) -> None:
    response = post(client, "/classify", [encode(solid(BLUE), "PNG"), encode(solid(RED, (10, 20)), "JPEG")])
    assert [top_label(response, 0), top_label(response, 1)] == ["blue", "red"]
    assert response.json()["results"][1]["image"] == {"width": 10, "height": 20}


def test_classify_top_k_sorted_and_clipped(client: httpx.Client) -> None:
    predictions = post(client, "/classify", [encode(solid((200, 100, 0)), "PNG")], top_k=10).json()
    ranked = predictions["results"][0]["predictions"]
    assert [p["label"] for p in ranked] == ["red", "green", "blue"]
    assert sum(p["probability"] for p in ranked) == pytest.approx(1.0, abs=1e-5)


def test_classify_raw_body(client: httpx.Client) -> None:
    response = client.post(
        "/classify", content=encode(solid(RED), "PNG"), headers={"Content-Type": "image/png"}
    )
    assert top_label(response) == "red"


def test_classify_named_version(client: httpx.Client) -> None:
    response = post(client, "/classify", [encode(solid(RED), "PNG")], model="colours", version=1)
    assert response.json()["model"] == {"name": "colours", "version": 1}


def boxes_of(response: httpx.Response, index: int = 0) -> list[tuple[str, list[float]]]:
    assert response.status_code == 200, response.text
    found = response.json()["results"][index]["detections"]
    return [(d["label"], [d["box"][k] for k in ("x_min", "y_min", "x_max", "y_max")]) for d in found]


# Letterbox into 32x32 scales a 64x32 image by 0.5 and pads 8 rows above and below; candidate A (8..24 px
# of the input both ways) maps to x 16..48 and y 0..32 after clipping; C lies wholly in the padding and is
# dropped.
LANDSCAPE_LETTERBOX = [("circle", [16.0, 0.0, 48.0, 32.0])]
# A 32x64 image is padded 8 columns left and right instead: A -> (0, 16, 32, 48), C -> (0, 0, 16, 16).
PORTRAIT_LETTERBOX = [("circle", [0.0, 16.0, 32.0, 48.0]), ("square", [0.0, 0.0, 16.0, 16.0])]


DETECT_INPUTS = {
    "jpeg": lambda: encode(bands(mode="RGB"), "JPEG"),
    "png": lambda: encode(bands(), "PNG"),
    "webp": lambda: encode(bands(mode="RGB"), "WEBP"),
    "grey": lambda: encode(bands(), "PNG"),
    "rgba": lambda: encode(bands(mode="RGBA"), "PNG"),
    "palette": lambda: palette(bands()),
    "cmyk-jpeg": lambda: cmyk_jpeg(bands(mode="RGB")),
    "16-bit": lambda: sixteen_bit(np.asarray(bands())),
}


@pytest.mark.parametrize("kind", sorted(DETECT_INPUTS))
def test_detect_boxes_in_original_pixels(client: httpx.Client, kind: str) -> None:
    response = post(client, "/detect", [DETECT_INPUTS[kind]()])
    assert boxes_of(response) == LANDSCAPE_LETTERBOX
    detection = response.json()["results"][0]["detections"][0]
    assert detection["class_id"] == 0
    assert detection["iou"] == pytest.approx(0.9)
    assert detection["score"] == pytest.approx(0.81)


def test_detect_stretch_model(client: httpx.Client) -> None:
    response = post(client, "/detect", [encode(bands(), "PNG")], model="boxes-stretch")
    assert boxes_of(response) == [("circle", [16.0, 8.0, 48.0, 24.0]), ("square", [0.0, 0.0, 32.0, 8.0])]


def rotated_jpeg(upright: Image.Image, orientation: int) -> bytes:
    """A JPEG stored sideways whose EXIF orientation tag turns it back into `upright`."""
    stored = upright.transpose(Image.Transpose.ROTATE_90 if orientation == 6 else Image.Transpose.ROTATE_270)
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(stored.convert("RGB"), "JPEG", quality=98, exif=exif)


@pytest.mark.parametrize("orientation", [6, 8])
def test_detect_exif_rotated_jpeg_in_upright_coordinates(client: httpx.Client, orientation: int) -> None:
    upright = bands(size=(32, 64))
    response = post(client, "/detect", [rotated_jpeg(upright, orientation)])
    assert response.json()["results"][0]["image"] == {"width": 32, "height": 64}
    assert boxes_of(response) == PORTRAIT_LETTERBOX


def test_detect_batch_in_order(client: httpx.Client) -> None:
    response = post(client, "/detect", [encode(bands((32, 64)), "PNG"), encode(bands(), "PNG")])
    assert boxes_of(response, 0) == PORTRAIT_LETTERBOX
    assert boxes_of(response, 1) == LANDSCAPE_LETTERBOX


def test_detect_thresholds_change_the_answer(client: httpx.Client) -> None:
    data = [encode(bands((32, 64)), "PNG")]
    assert boxes_of(post(client, "/detect", data, score_threshold=0.5)) == PORTRAIT_LETTERBOX[:1]
    # With NMS off (threshold 1), the overlapping weaker circle B survives too.
    assert len(boxes_of(post(client, "/detect", data, iou_threshold=1.0))) == 3
    assert len(boxes_of(post(client, "/detect", data, score_threshold=0.05))) == 3
    assert boxes_of(post(client, "/detect", data, max_detections=1)) == PORTRAIT_LETTERBOX[:1]


def mask_of(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    return np.asarray(Image.open(io.BytesIO(response.content)))


SEGMENT_INPUTS = {
    "jpeg": lambda: encode(bands(mode="RGB"), "JPEG", quality=98),
    "png": lambda: encode(bands(), "PNG"),
    "webp": lambda: encode(bands(mode="RGB"), "WEBP", lossless=True),
    "bmp": lambda: encode(bands(mode="RGB"), "BMP"),
    "gif": lambda: encode(bands(), "GIF"),
    "tiff": lambda: encode(bands(mode="RGB"), "TIFF"),
    "rgba": lambda: encode(bands(mode="RGBA"), "PNG"),
    "palette": lambda: palette(bands()),
    "cmyk-jpeg": lambda: cmyk_jpeg(bands(mode="RGB")),
    "16-bit": lambda: sixteen_bit(np.asarray(bands())),
}


@pytest.mark.parametrize("kind", sorted(SEGMENT_INPUTS))
def test_segment_trimap_matches_bands(client: httpx.Client, kind: str) -> None:
    mask = mask_of(post(client, "/segment", [SEGMENT_INPUTS[kind]()]))
    assert mask.shape == (32, 64)
    assert set(np.unique(mask)) <= {1, 2, 3}
    np.testing.assert_array_equal(mask, expected_trimap())


@pytest.mark.parametrize("orientation", [6, 8])
def test_segment_exif_rotated_jpeg_is_upright(client: httpx.Client, orientation: int) -> None:
    upright = bands(size=(64, 128))
    mask = mask_of(post(client, "/segment", [rotated_jpeg(upright, orientation)]))
    np.testing.assert_array_equal(mask, expected_trimap((64, 128)))


def test_segment_odd_size_keeps_exact_width_and_height(client: httpx.Client) -> None:
    mask = mask_of(post(client, "/segment", [encode(bands((333, 97)), "PNG")]))
    assert mask.shape == (97, 333)
    assert set(np.unique(mask)) == {1, 2, 3}


@pytest.mark.parametrize(("style", "mode"), [("color", "P"), ("overlay", "RGB")])
def test_segment_styles_are_viewable_in_colour(client: httpx.Client, style: str, mode: str) -> None:
    response = post(client, "/segment", [encode(bands(mode="RGB"), "JPEG")], style=style)
    image = Image.open(io.BytesIO(response.content))
    assert (image.mode, image.size) == (mode, (64, 32))
    pixels = np.asarray(image.convert("RGB"))
    # Pet, border and background bands are drawn in three different colours.
    assert len({tuple(pixels[16, x]) for x in (4, 20, 50)}) == 3


def test_segment_json_batch(client: httpx.Client) -> None:
    files = [encode(bands(), "PNG"), encode(bands((32, 64)), "PNG")]
    response = post(client, "/segment/json", files)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["image"] for r in results] == [{"width": 64, "height": 32}, {"width": 32, "height": 64}]
    assert results[0]["fractions"] == pytest.approx({"pet": 0.25, "border": 0.25, "background": 0.5})
    decoded = np.asarray(Image.open(io.BytesIO(base64.b64decode(results[1]["png_base64"]))))
    np.testing.assert_array_equal(decoded, expected_trimap((32, 64)))
