"""Tokens of OpenAI message content: a string, or a list of typed parts (Chat and Responses)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import tiktoken

from budget_guard.counting.encoding_lookup import count_text
from budget_guard.counting.image_size import data_url_size
from budget_guard.counting.images import GPT_4O_RULE, ImageRule, openai_image_tokens
from budget_guard.counting.json_fields import as_object, get_str, invalid_type

# Part types whose tokens are their "text" field, across Chat and Responses.
_TEXT_PARTS = frozenset({"text", "input_text", "output_text", "summary_text", "reasoning_text"})


PartCounter = Callable[[dict[str, Any], str, tiktoken.Encoding], int]


def count_content(
    content: object,
    param: str,
    encoding: tiktoken.Encoding,
    count_part: PartCounter | None = None,
) -> int:
    """Tokens of ``content``: a string, or parts each priced by ``count_part`` (OpenAI's by
    default, where parts with no published price, audio and files, count 0)."""
    count_part = count_part or _DEFAULT_PARTS
    if content is None:
        return 0
    if isinstance(content, str):
        return count_text(encoding, content)
    if not isinstance(content, list):
        raise invalid_type(param, "one of a string or array of objects", content)
    total = 0
    for index, raw in enumerate(content):
        part_param = f"{param}.[{index}]"
        total += count_part(as_object(raw, part_param), part_param, encoding)
    return total


def openai_parts(image_rule: ImageRule) -> PartCounter:
    """The part counter for a model whose images ``image_rule`` prices
    (see :func:`~budget_guard.counting.images.image_rule_for`)."""
    if image_rule is GPT_4O_RULE:
        return _DEFAULT_PARTS
    return functools.partial(_count_part, image_rule=image_rule)


def _count_part(
    part: dict[str, Any],
    param: str,
    encoding: tiktoken.Encoding,
    image_rule: ImageRule = GPT_4O_RULE,
) -> int:
    kind = get_str(part, "type", param)
    if kind in _TEXT_PARTS:
        text = get_str(part, "text", param)
        return count_text(encoding, text) if text else 0
    if kind == "refusal":
        refusal = get_str(part, "refusal", param)
        return count_text(encoding, refusal) if refusal else 0
    if kind == "image_url":  # Chat: {"image_url": {"url": ..., "detail": ...}} or a bare URL
        image = part.get("image_url")
        if isinstance(image, str):
            return openai_image_tokens(data_url_size(image), None, image_rule)
        image = as_object(image, f"{param}.image_url")
        url = get_str(image, "url", f"{param}.image_url")
        detail = get_str(image, "detail", f"{param}.image_url")
        return openai_image_tokens(data_url_size(url) if url else None, detail, image_rule)
    if kind == "input_image":  # Responses: {"image_url": "...", "detail": ...} or a file_id
        url = get_str(part, "image_url", param)
        detail = get_str(part, "detail", param)
        return openai_image_tokens(data_url_size(url) if url else None, detail, image_rule)
    return 0


_DEFAULT_PARTS: PartCounter = _count_part
