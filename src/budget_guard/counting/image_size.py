"""Pixel size of an inline (base64) image, read from its header without decoding the whole image.

Both OpenAI's and Anthropic's image prices depend on the size; inline images carry it in the first
bytes, remote URLs do not (and are never fetched).
"""

from __future__ import annotations

import base64
import binascii
import struct

# JPEG may put EXIF/ICC blocks before the frame header; this much covers nearly all of them.
_HEADER_BYTES = 64 * 1024
_ENCODED_HEADER_CHARS = _HEADER_BYTES // 3 * 4
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def data_url_size(url: str) -> tuple[int, int] | None:
    """(width, height) of a ``data:image/...;base64,`` URL, or None if it cannot be told."""
    if not url.startswith("data:"):
        return None
    comma = url.find(",", 0, 256)
    if comma < 0 or not url[:comma].endswith(";base64"):
        return None
    return base64_image_size(url[comma + 1 : comma + 1 + _ENCODED_HEADER_CHARS])


def base64_image_size(data: str) -> tuple[int, int] | None:
    try:
        header = base64.b64decode(data[:_ENCODED_HEADER_CHARS])
    except (binascii.Error, ValueError):
        return None
    return image_size(header)


def image_size(header: bytes) -> tuple[int, int] | None:
    """(width, height) from the first bytes of a PNG, GIF, WebP or JPEG file."""
    try:
        if header.startswith(b"\x89PNG\r\n\x1a\n"):
            width, height = struct.unpack(">II", header[16:24])
        elif header[:6] in (b"GIF87a", b"GIF89a"):
            width, height = struct.unpack("<HH", header[6:10])
        elif header[:4] == b"RIFF" and header[8:12] == b"WEBP":
            return _webp_size(header)
        elif header.startswith(b"\xff\xd8"):
            return _jpeg_size(header)
        else:
            return None
    except struct.error:
        return None
    return (width, height) if width and height else None


def _webp_size(header: bytes) -> tuple[int, int] | None:
    chunk = header[12:16]
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", header[26:30])
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L":
        bits = int.from_bytes(header[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":
        return (
            int.from_bytes(header[24:27], "little") + 1,
            int.from_bytes(header[27:30], "little") + 1,
        )
    return None


def _jpeg_size(header: bytes) -> tuple[int, int] | None:
    offset = 2
    while offset + 9 <= len(header):
        if header[offset] != 0xFF:
            return None
        marker = header[offset + 1]
        if marker == 0xFF:  # fill byte
            offset += 1
            continue
        if marker in _SOF_MARKERS:
            height, width = struct.unpack(">HH", header[offset + 5 : offset + 9])
            return (width, height) if width and height else None
        (length,) = struct.unpack(">H", header[offset + 2 : offset + 4])
        offset += 2 + length
    return None
