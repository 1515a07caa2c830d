"""Reading a small, already parsed, non-streamed response the way ``json_body``'s walker reads it.

Most answers are a few KiB: parsing one with a single ``orjson.loads`` and looking up the few
fields that hold text costs a fraction of walking it byte by byte. It must find exactly what
the walker finds (``response_paths`` is the rule book), so it follows the walker's choices,
not a looser reading of each API: a tool call's key is its position in the list (not an
``index`` field), a call's ``arguments`` and ``input`` are both counted under one key in the
order they appear, a part's ``text`` and ``refusal`` likewise, and an Anthropic tool's
``input`` is counted as compact JSON when it is a container and as sent when it is a string.
(A document with a repeated key is read by its last occurrence here; no API sends one.)
"""

from __future__ import annotations

from typing import Any

import orjson

from budget_guard.counting.output_collector import OutputCollector
from budget_guard.counting.output_shapes import note_container, note_output_item

_MESSAGE_FIELDS = ("refusal", "reasoning_content", "reasoning")
_ARGUMENTS = ("arguments", "input")
_PART_TEXTS = ("text", "refusal")
_CALLS = ("function_call", "custom_tool_call")
_TOOL_BLOCKS = ("tool_use", "server_tool_use")
_CALL_OBJECTS = ("function", "custom")


def collect_whole_body(collector: OutputCollector, body: object) -> None:
    """Hand ``body``'s id, usage and generated text to ``collector``."""
    if not isinstance(body, dict):
        return  # the walker finds nothing in a root array or scalar either
    collector.note_response_id(body.get("id"))
    usage = body.get("usage")
    if isinstance(usage, dict):
        collector.usage.merge(usage, final=True)
    choices = body.get("choices")
    if isinstance(choices, list):
        for index, choice in enumerate(choices):
            if isinstance(choice, dict):
                _add_choice(collector, index, choice)
    output = body.get("output")
    if isinstance(output, list):
        for index, item in enumerate(output):
            if isinstance(item, dict):
                note_output_item(collector, item)
                _add_output_item(collector, index, item)
    note_container(collector, body)  # an Anthropic answer's code-execution container
    content = body.get("content")
    if isinstance(content, list) and body.get("type") == "message":
        for index, block in enumerate(content):
            if isinstance(block, dict):
                _add_block(collector, index, block)


def _add_choice(collector: OutputCollector, index: int, choice: dict[str, Any]) -> None:
    collector.add_text((index, "text"), choice.get("text"))
    message = choice.get("message")
    if not isinstance(message, dict):
        return
    audio = message.get("audio")
    if isinstance(audio, dict):  # an audio answer, which a later turn replays by its id
        collector.note_item_id(audio.get("id"))
    content = message.get("content")
    if isinstance(content, list):
        for part_index, part in enumerate(content):
            if isinstance(part, dict):
                collector.add_text((index, "part", part_index), part.get("text"))
    else:
        collector.add_text((index, "content"), content)
    for field in _MESSAGE_FIELDS:
        collector.add_text((index, field), message.get(field))
    tool_calls = message.get("tool_calls")
    if isinstance(tool_calls, list):
        for position, call in enumerate(tool_calls):
            if isinstance(call, dict):
                for name, inner in call.items():
                    if name in _CALL_OBJECTS and isinstance(inner, dict):
                        _add_call(collector, (index, "tool", position), inner)
    function_call = message.get("function_call")
    if isinstance(function_call, dict):
        _add_call(collector, (index, "function_call"), function_call)


def _add_call(collector: OutputCollector, key: tuple[Any, ...], call: dict[str, Any]) -> None:
    collector.add_text((*key, "name"), call.get("name"))
    for field, value in call.items():
        if field in _ARGUMENTS:
            collector.add_text((*key, "arguments"), value)


def _add_output_item(collector: OutputCollector, index: int, item: dict[str, Any]) -> None:
    kind = item.get("type")
    if kind == "message":
        parts = item.get("content")
        if isinstance(parts, list):
            for part_index, part in enumerate(parts):
                if isinstance(part, dict):
                    for field, value in part.items():
                        if field in _PART_TEXTS:
                            collector.add_text(("out", index, part_index), value)
    elif kind in _CALLS:
        _add_call(collector, ("out", index), item)
    elif kind == "reasoning":
        summary = item.get("summary")
        if isinstance(summary, list):
            for part_index, part in enumerate(summary):
                if isinstance(part, dict):
                    collector.add_text(("sum", index, part_index), part.get("text"))


def _add_block(collector: OutputCollector, index: int, block: dict[str, Any]) -> None:
    kind = block.get("type")
    if kind == "text":
        collector.add_text(("blk", index), block.get("text"))
    elif kind == "thinking":
        collector.add_text(("blk", index), block.get("thinking"))
    elif kind in _TOOL_BLOCKS:
        collector.add_text(("blk", index, "name"), block.get("name"))
        value = block.get("input")
        if isinstance(value, str):
            collector.add_text(("blk", index), value)
        elif isinstance(value, (dict, list)) and value != {}:
            collector.add_text(("blk", index), orjson.dumps(value).decode())
