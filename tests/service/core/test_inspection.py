"""The look at a file's structure before decoding: the structures that cost a decoder seconds are refused, and
honest files of every kind, real photos included, pass."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import sklearn.datasets
from conftest import encode, solid
from hostile import jpeg_with_exif_segments, jpeg_with_repeated_scans, tiff_with_long_tag
from PIL import Image

from service.core.errors import ImageTooLargeError
from service.core.inspection import MAX_JPEG_SCANS, MAX_TIFF_TAG_VALUES, inspect

PHOTOS = sorted((Path(sklearn.datasets.__file__).parent / "images").glob("*.jpg"))


def with_comments(jpeg: bytes, count: int) -> bytes:
    return jpeg[:2] + b"\xff\xfe\x00\x03x" * count + jpeg[2:]


def honest_files() -> list[tuple[str, bytes]]:
    photo = Image.open(PHOTOS[0])
    exif = photo.getexif()
    exif[0x0112] = 6
    files = [(path.name, path.read_bytes()) for path in PHOTOS]
    files += [
        ("progressive", encode(photo, "JPEG", progressive=True)),
        (
            "progressive, optimised, 4:4:4",
            encode(photo, "JPEG", progressive=True, optimize=True, subsampling=0),
        ),
        (
            "Exif and a 200 KB ICC profile",
            encode(photo, "JPEG", exif=exif.tobytes(), icc_profile=b"\0" * 200_000),
        ),
    ]
    files += [
        (f"TIFF {name}", encode(photo, "TIFF", compression=name)) for name in ("raw", "tiff_lzw", "jpeg")
    ]
    files += [("TIFF with Exif", encode(photo, "TIFF", exif=exif.tobytes()))]
    return files


HONEST = honest_files()


@pytest.mark.parametrize(("name", "data"), HONEST, ids=[name for name, _ in HONEST])
def test_honest_files_pass(name: str, data: bytes) -> None:
    inspect(data)
    Image.open(io.BytesIO(data)).load()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (jpeg_with_repeated_scans(MAX_JPEG_SCANS), f"has {MAX_JPEG_SCANS + 10} scans, over the limit of 100"),
        (jpeg_with_exif_segments(5), "has 5 Exif segments, over the limit of 4"),
        (with_comments(encode(solid((1, 2, 3)), "JPEG"), 1000), "has 257 segments before its first scan"),
        (tiff_with_long_tag(65000, 3, MAX_TIFF_TAG_VALUES + 1, 2), "has 4097 values in tag 65000"),
        (tiff_with_long_tag(282, 5, 5000, 8), "has 5000 values in tag 282"),
        (tiff_with_long_tag(273, 4, 3_000_000, 4), "has 3000000 values in tag 273"),
        (tiff_with_long_tag(700, 1, 9 << 20, 1), f"has {9 << 20} bytes in tag 700"),
    ],
    ids=["scans", "Exif segments", "segments", "tag values", "fractions", "strip table", "XMP bytes"],
)
def test_costly_structures_are_refused_before_decoding(data: bytes, message: str) -> None:
    with pytest.raises(ImageTooLargeError, match=message):
        inspect(data)


def test_a_long_strip_table_and_a_large_blob_pass() -> None:
    inspect(tiff_with_long_tag(273, 4, 100_000, 4))
    inspect(tiff_with_long_tag(34675, 7, 4 << 20, 1))  # a 4 MiB ICC profile


@pytest.mark.parametrize("keep", [3, 10, 40, 200])
def test_files_cut_short_are_left_to_the_decoder(keep: int) -> None:
    inspect(encode(solid((1, 2, 3)), "JPEG")[:keep])
    inspect(encode(solid((1, 2, 3)), "TIFF")[:keep])
