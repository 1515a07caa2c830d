"""Input tokens of legacy Completions (``prompt``) and Embeddings (``input``) requests.

Both accept a string, a list of strings, a list of token ids or a list of token-id lists; token
ids are counted as they are, never decoded.
"""

from __future__ import annotations

from typing import Any

import tiktoken

from budget_guard.counting.encoding_lookup import count_text
from budget_guard.counting.json_fields import get_str, invalid_type

_EXPECTED = "one of a string, array of strings, array of integers, or array of integer arrays"


def count_completions_request(body: dict[str, Any], encoding: tiktoken.Encoding) -> int:
    total = count_prompt(body.get("prompt"), "prompt", encoding)
    suffix = get_str(body, "suffix")
    return total + count_text(encoding, suffix) if suffix else total


def count_embeddings_request(body: dict[str, Any], encoding: tiktoken.Encoding) -> int:
    return count_prompt(body.get("input"), "input", encoding)


def count_prompt(value: object, param: str, encoding: tiktoken.Encoding) -> int:
    if value is None:
        return 0
    if isinstance(value, str):
        return count_text(encoding, value)
    if not isinstance(value, list):
        raise invalid_type(param, _EXPECTED, value)
    total = 0
    for index, item in enumerate(value):
        if isinstance(item, str):
            total += count_text(encoding, item)
        elif _is_token_id(item):
            total += 1
        elif isinstance(item, list) and all(_is_token_id(token) for token in item):
            total += len(item)
        else:
            raise invalid_type(
                f"{param}.[{index}]", "a string, an integer or an integer array", item
            )
    return total


def _is_token_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
