"""Input tokens of a Chat Completions request (``/v1/chat/completions``).

Messages follow OpenAI's documented framing (see ``message_format``); content parts, images and
tool definitions follow their own modules. Tool calls an assistant message carries count their
function name and arguments text, which is how the upstream renders them back to the model.
"""

from __future__ import annotations

from typing import Any

import tiktoken

from budget_guard.counting.content_parts import count_content, openai_parts
from budget_guard.counting.encoding_lookup import count_text
from budget_guard.counting.function_definitions import count_function_definitions
from budget_guard.counting.images import image_rule_for
from budget_guard.counting.json_fields import as_object, get_list, get_object, get_str
from budget_guard.counting.message_format import (
    REPLY_PRIMING,
    TOKENS_PER_MESSAGE,
    message_framing,
)
from budget_guard.counting.tool_definitions import openai_function_definitions


def count_chat_request(
    body: dict[str, Any], encoding: tiktoken.Encoding, model: str | None = None
) -> int:
    """``model`` (an Azure deployment's, say) prices images when the body names none."""
    count_part = openai_parts(image_rule_for(get_str(body, "model") or model))
    total = REPLY_PRIMING
    for index, raw in enumerate(get_list(body, "messages") or ()):
        if type(raw) is dict and len(raw) == 2:
            # Most messages are exactly a role and a text: framed and counted without the
            # general walk (same result: the walk below reads nothing else).
            role, content = raw.get("role"), raw.get("content")
            if type(role) is str and type(content) is str:
                total += TOKENS_PER_MESSAGE + count_text(encoding, content)
                if role:
                    total += count_text(encoding, role)
                continue
        param = f"messages.[{index}]"
        message = as_object(raw, param)
        total += message_framing(
            encoding, get_str(message, "role", param), get_str(message, "name", param)
        )
        total += count_content(message.get("content"), f"{param}.content", encoding, count_part)
        refusal = get_str(message, "refusal", param)
        if refusal:
            total += count_text(encoding, refusal)
        total += _tool_calls_tokens(message, param, encoding)
    return total + count_function_definitions(openai_function_definitions(body), encoding)


def _tool_calls_tokens(message: dict[str, Any], param: str, encoding: tiktoken.Encoding) -> int:
    total = 0
    for index, raw in enumerate(get_list(message, "tool_calls", param) or ()):
        call_param = f"{param}.tool_calls.[{index}]"
        call = as_object(raw, call_param)
        if (function := get_object(call, "function", call_param)) is not None:
            total += _call_tokens(function, "arguments", f"{call_param}.function", encoding)
        elif (custom := get_object(call, "custom", call_param)) is not None:
            total += _call_tokens(custom, "input", f"{call_param}.custom", encoding)
    if (legacy := get_object(message, "function_call", param)) is not None:
        total += _call_tokens(legacy, "arguments", f"{param}.function_call", encoding)
    return total


def _call_tokens(
    call: dict[str, Any], arguments_key: str, param: str, encoding: tiktoken.Encoding
) -> int:
    total = 0
    for key in ("name", arguments_key):
        text = get_str(call, key, param)
        if text:
            total += count_text(encoding, text)
    return total
