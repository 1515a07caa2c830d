"""Token estimates for image inputs, by the rules OpenAI and Anthropic publish.

OpenAI (GPT-4o-class tile rule): ``detail: low`` costs 85 tokens; otherwise the image is scaled
to fit 2048x2048, then so its shortest side is at most 768px, and costs 170 tokens per 512px tile
plus 85. When the size cannot be read (remote URL, file id) the documented 1024x1024 example is
assumed: 765 tokens.

Anthropic: about width*height/750 tokens after scaling the long edge to at most 1568px, never more
than about 1600; an image of unknown size is taken at that maximum.
"""

from __future__ import annotations

import math

OPENAI_LOW_DETAIL_TOKENS = 85
OPENAI_TILE_TOKENS = 170
OPENAI_ASSUMED_SIZE = (1024, 1024)

ANTHROPIC_MAX_IMAGE_TOKENS = 1600
_ANTHROPIC_MAX_EDGE = 1568
_ANTHROPIC_PIXELS_PER_TOKEN = 750


def openai_image_tokens(size: tuple[int, int] | None, detail: str | None) -> int:
    if detail == "low":
        return OPENAI_LOW_DETAIL_TOKENS
    width, height = size or OPENAI_ASSUMED_SIZE
    if max(width, height) > 2048:
        scale = 2048 / max(width, height)
        width, height = width * scale, height * scale
    if min(width, height) > 768:
        scale = 768 / min(width, height)
        width, height = width * scale, height * scale
    tiles = math.ceil(width / 512) * math.ceil(height / 512)
    return OPENAI_LOW_DETAIL_TOKENS + OPENAI_TILE_TOKENS * tiles


def anthropic_image_tokens(size: tuple[int, int] | None) -> int:
    if size is None:
        return ANTHROPIC_MAX_IMAGE_TOKENS
    width, height = size
    if max(width, height) > _ANTHROPIC_MAX_EDGE:
        scale = _ANTHROPIC_MAX_EDGE / max(width, height)
        width, height = width * scale, height * scale
    tokens = math.ceil(width * height / _ANTHROPIC_PIXELS_PER_TOKEN)
    return min(tokens, ANTHROPIC_MAX_IMAGE_TOKENS)
