"""Image token estimates follow the published rules, with sizes read from inline image headers."""

from __future__ import annotations

import base64
import struct

import pytest

from budget_guard.counting.image_size import base64_image_size, data_url_size, image_size
from budget_guard.counting.images import anthropic_image_tokens, openai_image_tokens


@pytest.mark.parametrize(
    ("size", "detail", "tokens"),
    [
        ((1024, 1024), "high", 765),  # OpenAI's worked example
        ((2048, 4096), "high", 1105),  # OpenAI's worked example
        ((4096, 8192), "low", 85),  # OpenAI's worked example
        ((512, 512), "auto", 255),
        ((513, 512), None, 425),
        ((100, 3000), "high", 85 + 170 * 4),  # fits 2048 as 68x2048: one column of 4 tiles
        (None, None, 765),
        (None, "low", 85),
    ],
)
def test_openai_tile_rule(size: tuple[int, int] | None, detail: str | None, tokens: int) -> None:
    assert openai_image_tokens(size, detail) == tokens


@pytest.mark.parametrize(
    ("size", "tokens"),
    [
        ((200, 200), 54),  # Anthropic's table: 200x200 is about 54 tokens
        ((1000, 1000), 1334),  # about 1334
        ((1092, 1092), 1590),  # about 1590
        ((4000, 3000), 1600),  # scaled down, capped
        (None, 1600),
    ],
)
def test_anthropic_rule(size: tuple[int, int] | None, tokens: int) -> None:
    assert anthropic_image_tokens(size) == tokens


def _jpeg(width: int, height: int) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + sof + b"\xff\xd9"


@pytest.mark.parametrize(
    ("header", "size"),
    [
        (b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + struct.pack(">II", 640, 480), (640, 480)),
        (b"GIF89a" + struct.pack("<HH", 320, 200), (320, 200)),
        (_jpeg(1920, 1080), (1920, 1080)),
        (b"RIFF\x00\x00\x00\x00WEBPVP8X" + b"\x00" * 8 + (799).to_bytes(3, "little")
         + (599).to_bytes(3, "little"), (800, 600)),
        (b"RIFF\x00\x00\x00\x00WEBPVP8L\x00\x00\x00\x00\x2f"
         + ((99) | (49 << 14)).to_bytes(4, "little"), (100, 50)),
        (b"not an image", None),
        (b"\x89PNG\r\n\x1a\n", None),
    ],
)  # fmt: skip
def test_image_header_sizes(header: bytes, size: tuple[int, int] | None) -> None:
    assert image_size(header) == size


def test_data_urls() -> None:
    gif = base64.b64encode(b"GIF87a" + struct.pack("<HH", 10, 20) + b"\x00" * 30).decode()
    assert data_url_size(f"data:image/gif;base64,{gif}") == (10, 20)
    assert base64_image_size(gif) == (10, 20)
    assert data_url_size("https://example.com/a.gif") is None
    assert data_url_size("data:image/gif,rawbytes") is None
    assert base64_image_size("!!!not base64") is None
