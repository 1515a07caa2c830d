"""Input tokens of a Responses API request (``/v1/responses``).

``instructions`` counts as a developer message and ``input`` as a user message (a string) or as
its items; messages use the Chat framing, function calls and their outputs their text. Context the
upstream adds by ``previous_response_id`` or a conversation is invisible here; the upstream's own
usage covers it after the response.
"""

from __future__ import annotations

from typing import Any

import tiktoken

from budget_guard.counting.content_parts import PartCounter, count_content, openai_parts
from budget_guard.counting.encoding_lookup import count_text
from budget_guard.counting.function_definitions import count_function_definitions
from budget_guard.counting.images import image_rule_for
from budget_guard.counting.json_fields import as_object, get_list, get_str, invalid_type
from budget_guard.counting.message_format import REPLY_PRIMING, message_framing
from budget_guard.counting.tool_definitions import openai_function_definitions

_CALL_TEXT_FIELDS = {
    "function_call": ("name", "arguments"),
    "custom_tool_call": ("name", "input"),
}
_OUTPUT_ITEMS = frozenset({"function_call_output", "custom_tool_call_output"})


def count_responses_request(
    body: dict[str, Any], encoding: tiktoken.Encoding, model: str | None = None
) -> int:
    """``model`` (an Azure deployment's, say) prices images when the body names none."""
    count_part = openai_parts(image_rule_for(get_str(body, "model") or model))
    total = REPLY_PRIMING
    instructions = get_str(body, "instructions")
    if instructions:
        total += message_framing(encoding, "developer", None) + count_text(encoding, instructions)
    items = body.get("input")
    if isinstance(items, str):
        total += message_framing(encoding, "user", None) + count_text(encoding, items)
    elif isinstance(items, list):
        for index, raw in enumerate(items):
            param = f"input.[{index}]"
            total += _item_tokens(as_object(raw, param), param, encoding, count_part)
    elif items is not None:
        raise invalid_type("input", "one of a string or array of objects", items)
    return total + count_function_definitions(openai_function_definitions(body), encoding)


def _item_tokens(
    item: dict[str, Any], param: str, encoding: tiktoken.Encoding, count_part: PartCounter
) -> int:
    kind = get_str(item, "type", param)
    if kind in (None, "message"):
        role = get_str(item, "role", param)
        return message_framing(encoding, role, None) + count_content(
            item.get("content"), f"{param}.content", encoding, count_part
        )
    if kind in _CALL_TEXT_FIELDS:
        total = 0
        for key in _CALL_TEXT_FIELDS[kind]:
            text = get_str(item, key, param)
            if text:
                total += count_text(encoding, text)
        return total
    if kind in _OUTPUT_ITEMS:
        return count_content(item.get("output"), f"{param}.output", encoding, count_part)
    if kind == "reasoning":
        summary = get_list(item, "summary", param)
        return count_content(summary, f"{param}.summary", encoding) if summary else 0
    return 0
