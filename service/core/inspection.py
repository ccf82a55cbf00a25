"""A look at an upload's structure before any decoder parses it: what would make Pillow work for seconds or
allocate hundreds of megabytes is refused from a walk of the file's segments, in microseconds.

What is refused, and what it cost Pillow on the 2-core machine that measured it:
- a JPEG of 10,000 progressive scans (185 KB): 26 s, each scan a pass over the whole image;
- a JPEG with 30,000 Exif segments (600 KB): Pillow joins them one by one, quadratic (140 s for 300,000);
- a TIFF tag of a million values (8 MB): 1.3 s and 95 MiB turning them into Python objects.

Files whose structure cannot be walked are left to the decoder, which refuses them as damaged.
"""

from __future__ import annotations

import struct

from service.core.errors import ImageTooLargeError

# A baseline JPEG has one scan, a progressive one from libjpeg or mozjpeg about ten; the most any encoder's
# scan script needs is under a hundred.
MAX_JPEG_SCANS = 100
# Segments before the first scan: tables, APPn metadata (an ICC profile split over a few dozen APP2 at
# most), comments. A camera JPEG has about a dozen.
MAX_JPEG_SEGMENTS = 256
# Exif is one APP1 segment; Pillow appends any further ones to it.
MAX_JPEG_EXIF_SEGMENTS = 4
# A TIFF directory lists a few dozen tags; only the strip and tile tables grow with the image.
MAX_TIFF_TAGS = 1024
MAX_TIFF_TAG_VALUES = 4096
MAX_TIFF_TABLE_VALUES = 1 << 20
MAX_TIFF_TAG_BYTES = 8 << 20
TIFF_TABLE_TAGS = frozenset(
    {273, 279, 324, 325}
)  # strip offsets and byte counts, tile offsets and byte counts
# Bytes per value of each TIFF field type (TIFF 6.0 and BigTIFF); unknown types count as one byte.
_TIFF_TYPE_BYTES = {
    1: 1,
    2: 1,
    3: 2,
    4: 4,
    5: 8,
    6: 1,
    7: 1,
    8: 2,
    9: 4,
    10: 8,
    11: 4,
    12: 8,
    13: 4,
    16: 8,
    17: 8,
    18: 8,
}
_TIFF_BYTE_TYPES = frozenset(
    {1, 2, 6, 7}
)  # BYTE, ASCII, SBYTE, UNDEFINED: one Python object whatever the size
_JPEG_START = b"\xff\xd8\xff"
_JPEG_SCAN = 0xDA
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xDA)})
_EXIF_APP1 = (0xE1, b"Exif\x00\x00")


def inspect(data: bytes) -> None:
    """ImageTooLarge when `data`'s structure asks for more work than any honest file of its kind."""
    if data.startswith(_JPEG_START):
        _inspect_jpeg(data)
    elif data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        _inspect_tiff(data)


def _inspect_jpeg(data: bytes) -> None:
    position = 2
    segments = exif = 0
    while position + 4 <= len(data) and data[position] == 0xFF:
        marker = data[position + 1]
        if marker == 0xFF:  # a fill byte before a marker
            position += 1
            continue
        if marker in _JPEG_STANDALONE:
            position += 2
            continue
        if marker == _JPEG_SCAN:
            # In entropy-coded data 0xFF is always followed by 0x00 or a restart marker, so every 0xFFDA from
            # here on starts a scan.
            _refuse_over("JPEG", "scans", data.count(b"\xff\xda", position), MAX_JPEG_SCANS)
            return
        segments += 1
        _refuse_over("JPEG", "segments before its first scan", segments, MAX_JPEG_SEGMENTS)
        if (marker, data[position + 4 : position + 10]) == _EXIF_APP1:
            exif += 1
            _refuse_over("JPEG", "Exif segments", exif, MAX_JPEG_EXIF_SEGMENTS)
        position += 2 + int.from_bytes(data[position + 2 : position + 4], "big")


def _inspect_tiff(data: bytes) -> None:
    """The first directory, the one Pillow reads when it opens the file."""
    order = "<" if data[:2] == b"II" else ">"
    big = data[2:4] in (b"+\x00", b"\x00+")
    try:
        if big:
            (offset,) = struct.unpack_from(order + "Q", data, 8)
            (count,) = struct.unpack_from(order + "Q", data, offset)
            entry, first, layout = 20, offset + 8, order + "HHQ"
        else:
            (offset,) = struct.unpack_from(order + "I", data, 4)
            (count,) = struct.unpack_from(order + "H", data, offset)
            entry, first, layout = 12, offset + 2, order + "HHI"
        _refuse_over("TIFF", "tags in its first directory", count, MAX_TIFF_TAGS)
        for index in range(count):
            tag, kind, values = struct.unpack_from(layout, data, first + index * entry)
            if kind not in _TIFF_BYTE_TYPES:  # bytes, text and blobs (ICC, XMP) are bounded by size alone
                limit = MAX_TIFF_TABLE_VALUES if tag in TIFF_TABLE_TAGS else MAX_TIFF_TAG_VALUES
                _refuse_over("TIFF", f"values in tag {tag}", values, limit)
            _refuse_over(
                "TIFF", f"bytes in tag {tag}", values * _TIFF_TYPE_BYTES.get(kind, 1), MAX_TIFF_TAG_BYTES
            )
    except struct.error:
        return  # cut short: the decoder says it is damaged


def _refuse_over(kind: str, what: str, found: int, limit: int) -> None:
    if found > limit:
        raise ImageTooLargeError(
            f"the {kind} has {found} {what}, over the limit of {limit}: decoding it would cost too much",
            detail={"found": found, "limit": limit},
        )
