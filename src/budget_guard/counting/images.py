"""Token estimates for image inputs, by the rules OpenAI and Anthropic publish.

OpenAI prices an image by one of two rules, chosen by the model (:data:`OPENAI_IMAGE_RULES`, from
the "Calculating costs" section of OpenAI's vision guide):

- **tiles** (gpt-4o, gpt-4.1, gpt-4.5, gpt-4o-mini, o1, o3, gpt-5, computer-use-preview):
  ``detail: low`` costs the base; otherwise the image is scaled to fit 2048x2048, then so its
  shortest side is at most 768px, and costs the base plus a per-tile figure per 512px tile.
  Each scaled size is rounded to whole pixels before the next step, as the API does (a 2050x513
  image is billed as 2048x512, one row of tiles; without rounding it would be 512.5px tall, two
  rows). ``round`` rounds half to even: 512.5 -> 512 matches the API, 512.75 -> 513 too.
- **patches** (gpt-4.1-mini, gpt-4.1-nano, o4-mini, gpt-5-mini, gpt-5-nano): the image is cut
  into 32px patches; past 1536 patches it is scaled down so that it fits in 1536 (the scale then
  shrunk so whole patches fit one side), and the patch count, capped at 1536, is multiplied by
  the model's multiplier, rounded up. ``detail`` does not change this rule.

A model no rule names (another vendor's, a fine-tune's alias) is priced as gpt-4o, the rule the
guard always used. When the size cannot be read (remote URL, file id) the documented 1024x1024
example is assumed.

Anthropic: about width*height/750 tokens after scaling the long edge to at most 1568px, never more
than about 1600; an image of unknown size is taken at that maximum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

TILES = "tiles"
PATCHES = "patches"


@dataclass(frozen=True, slots=True)
class ImageRule:
    """How one model family prices an image: ``base`` + ``per_tile`` per 512px tile (tiles),
    or ``ceil(patches * multiplier_percent / 100)`` (patches; the multiplier is kept in
    hundredths so the arithmetic stays exact)."""

    family: str
    kind: str
    base: int = 0
    per_tile: int = 0
    multiplier_percent: int = 100


def _tiles(family: str, base: int, per_tile: int) -> ImageRule:
    return ImageRule(family, TILES, base=base, per_tile=per_tile)


def _patches(family: str, multiplier_percent: int) -> ImageRule:
    return ImageRule(family, PATCHES, multiplier_percent=multiplier_percent)


GPT_4O_RULE = _tiles("gpt-4o", 85, 170)

OPENAI_IMAGE_RULES: tuple[ImageRule, ...] = (
    _tiles("gpt-4o-mini", 2833, 5667),
    GPT_4O_RULE,
    _patches("gpt-4.1-mini", 162),
    _patches("gpt-4.1-nano", 246),
    _tiles("gpt-4.1", 85, 170),
    _tiles("gpt-4.5", 85, 170),
    _tiles("o1", 75, 150),  # o1 and o1-pro
    _tiles("o3", 75, 150),
    _patches("o4-mini", 172),
    _patches("gpt-5-mini", 162),
    _patches("gpt-5-nano", 246),
    _tiles("gpt-5", 70, 140),  # gpt-5, gpt-5-chat-latest and later gpt-5.x
    _tiles("computer-use-preview", 65, 129),
)
"""Model family -> image rule. A model belongs to the longest family its name starts with
(``gpt-4o-mini-2024-07-18`` is gpt-4o-mini, ``gpt-4o-2024-08-06`` gpt-4o); a ``provider/``
prefix (``openai/gpt-4o``) is ignored."""

_BY_LENGTH = sorted(OPENAI_IMAGE_RULES, key=lambda rule: len(rule.family), reverse=True)

OPENAI_ASSUMED_SIZE = (1024, 1024)
OPENAI_LOW_DETAIL_TOKENS = GPT_4O_RULE.base  # gpt-4o's figures, kept for existing callers
OPENAI_TILE_TOKENS = GPT_4O_RULE.per_tile
_MAX_PATCHES = 1536
_PATCH = 32

ANTHROPIC_MAX_IMAGE_TOKENS = 1600
_ANTHROPIC_MAX_EDGE = 1568
_ANTHROPIC_PIXELS_PER_TOKEN = 750


def image_rule_for(model: str | None) -> ImageRule:
    """The rule OpenAI prices ``model``'s images by; gpt-4o's for a model no rule names."""
    if not model:
        return GPT_4O_RULE
    name = model.rpartition("/")[2].lower()
    for rule in _BY_LENGTH:
        if name.startswith(rule.family):
            return rule
    return GPT_4O_RULE


def openai_image_tokens(
    size: tuple[int, int] | None, detail: str | None, rule: ImageRule = GPT_4O_RULE
) -> int:
    width, height = size or OPENAI_ASSUMED_SIZE
    if rule.kind == PATCHES:
        return math.ceil(patch_count(width, height) * rule.multiplier_percent / 100)
    if detail == "low":
        return rule.base
    return rule.base + rule.per_tile * tile_count(width, height)


def tile_count(width: int, height: int) -> int:
    """512px tiles of a ``detail: high`` image after the API's two scaling steps."""
    if max(width, height) > 2048:
        scale = 2048 / max(width, height)
        width, height = round(width * scale), round(height * scale)
    if min(width, height) > 768:
        scale = 768 / min(width, height)
        width, height = round(width * scale), round(height * scale)
    return math.ceil(width / 512) * math.ceil(height / 512)


def patch_count(width: int, height: int) -> int:
    """32px patches of an image, scaled down to fit 1536 patches when it has more."""
    patches = math.ceil(width / _PATCH) * math.ceil(height / _PATCH)
    if patches <= _MAX_PATCHES:
        return patches
    shrink = math.sqrt(_PATCH * _PATCH * _MAX_PATCHES / (width * height))
    across, down = width * shrink / _PATCH, height * shrink / _PATCH
    shrink *= min(math.floor(across) / across, math.floor(down) / down)
    scaled_width, scaled_height = round(width * shrink), round(height * shrink)
    patches = math.ceil(scaled_width / _PATCH) * math.ceil(scaled_height / _PATCH)
    return min(patches, _MAX_PATCHES)


def anthropic_image_tokens(size: tuple[int, int] | None) -> int:
    if size is None:
        return ANTHROPIC_MAX_IMAGE_TOKENS
    width, height = size
    if max(width, height) > _ANTHROPIC_MAX_EDGE:
        scale = _ANTHROPIC_MAX_EDGE / max(width, height)
        width, height = width * scale, height * scale
    tokens = math.ceil(width * height / _ANTHROPIC_PIXELS_PER_TOKEN)
    return min(tokens, ANTHROPIC_MAX_IMAGE_TOKENS)
