"""Estimated input tokens of an Anthropic Messages request (``/v1/messages``).

Claude's tokenizer is not public, so ``system``, ``messages`` and ``tools`` are counted with the
counter's default (shipped) encoding and the OpenAI framing: an estimate for the pre-check only.
The upstream's reported usage is what gets recorded for these requests.
"""

from __future__ import annotations

from typing import Any

import orjson
import tiktoken

from budget_guard.counting.content_parts import count_content
from budget_guard.counting.encoding_lookup import count_text
from budget_guard.counting.errors import InvalidRequestBody
from budget_guard.counting.function_definitions import count_function_definitions
from budget_guard.counting.image_size import base64_image_size
from budget_guard.counting.images import anthropic_image_tokens
from budget_guard.counting.json_fields import as_object, get_list, get_object, get_str
from budget_guard.counting.message_format import REPLY_PRIMING, message_framing
from budget_guard.counting.tool_definitions import anthropic_function_definitions


def count_messages_request(body: dict[str, Any], encoding: tiktoken.Encoding) -> int:
    total = REPLY_PRIMING
    system = body.get("system")
    if system:
        total += message_framing(encoding, "system", None)
        total += count_content(system, "system", encoding, _block_tokens)
    for index, raw in enumerate(get_list(body, "messages") or ()):
        param = f"messages.[{index}]"
        message = as_object(raw, param)
        total += message_framing(encoding, get_str(message, "role", param), None)
        total += count_content(message.get("content"), f"{param}.content", encoding, _block_tokens)
    return total + count_function_definitions(anthropic_function_definitions(body), encoding)


def _block_tokens(block: dict[str, Any], param: str, encoding: tiktoken.Encoding) -> int:
    kind = block.get("type")
    if kind in ("text", "thinking"):
        text = get_str(block, kind, param)
        return count_text(encoding, text) if text else 0
    if kind == "tool_use":
        name = get_str(block, "name", param) or ""
        return count_text(encoding, name) + count_text(encoding, _input_text(block, param))
    if kind == "tool_result":
        # Recursive, but body_limits bounds the depth before counting starts.
        return count_content(block.get("content"), f"{param}.content", encoding, _block_tokens)
    if kind == "image":
        return anthropic_image_tokens(_inline_image_size(block, param))
    if kind == "document":
        source = get_object(block, "source", param)
        if source is not None and source.get("type") == "text":
            data = get_str(source, "data", f"{param}.source")
            return count_text(encoding, data) if data else 0
    return 0


def _input_text(block: dict[str, Any], param: str) -> str:
    if "input" not in block:
        return ""
    try:
        return orjson.dumps(block["input"]).decode()
    except orjson.JSONEncodeError as exc:  # nesting past orjson's 254; body_limits stops less
        raise InvalidRequestBody(f"Invalid '{param}.input': {exc}.", f"{param}.input") from None


def _inline_image_size(block: dict[str, Any], param: str) -> tuple[int, int] | None:
    source = get_object(block, "source", param)
    if source is None or source.get("type") != "base64":
        return None
    data = get_str(source, "data", f"{param}.source")
    return base64_image_size(data) if data else None
