"""Where each supported API puts generated text, usage and the created object's id in a stream
event. (Whole JSON bodies are read by path as they pass: see ``response_paths``.)

Shapes are recognised by their keys rather than by the request's route, so a gateway that answers
one API in another's shape is still understood: ``choices`` chunks (Chat, Completions),
``response.*`` events (Responses API), ``message_*``/``content_block_*`` events (Anthropic).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from budget_guard.counting.output_collector import OutputCollector


def _add_message(collector: OutputCollector, index: int, message: object) -> None:
    """A Chat message, or a streamed delta of one: text, tool calls, legacy function call.
    Read by the keys it has (a delta has one or two), not by every key it might have."""
    if not isinstance(message, dict):
        return
    for field, value in message.items():
        if field == "content":
            if isinstance(value, list):  # some servers answer with content parts
                for part_index, part in enumerate(value):
                    if isinstance(part, dict):
                        collector.add_text((index, "part", part_index), part.get("text"))
            else:
                collector.add_text((index, "content"), value)
        elif field in _MESSAGE_TEXTS:
            collector.add_text((index, field), value)
        elif field == "tool_calls":
            if isinstance(value, list):
                for position, call in enumerate(value):
                    if isinstance(call, dict):
                        _add_call(
                            collector,
                            (index, "tool", call.get("index", position)),  # deltas name it
                            call.get("function") or call.get("custom"),
                        )
        elif field == "function_call":
            _add_call(collector, (index, "function_call"), value)
        elif field == "audio" and isinstance(value, dict):  # replayed later by its id
            collector.note_item_id(value.get("id"))


# The refusal, and the reasoning text some OpenAI-compatible servers (vLLM, DeepSeek,
# OpenRouter) return.
_MESSAGE_TEXTS = frozenset({"refusal", "reasoning_content", "reasoning"})


def _add_call(collector: OutputCollector, key: tuple[Hashable, ...], call: object) -> None:
    if isinstance(call, dict):
        collector.add_text((*key, "name"), call.get("name"))
        collector.add_text((*key, "arguments"), call.get("arguments") or call.get("input"))


def collect_event(collector: OutputCollector, event: dict[str, Any]) -> None:
    kind = event.get("type")
    if isinstance(kind, str):
        if kind.startswith("response."):
            _add_responses_event(collector, kind, event)
            return
        if _add_anthropic_event(collector, kind, event):
            return
    if collector.response_id is None:
        collector.note_response_id(event.get("id"))  # a chunk names its completion
    usage = event.get("usage")
    if isinstance(usage, dict):
        collector.usage.merge(usage, final=True)
    choices = event.get("choices")
    if isinstance(choices, list):
        for position, choice in enumerate(choices):
            if isinstance(choice, dict):
                _add_choice_delta(collector, choice, position)


def _add_choice_delta(collector: OutputCollector, choice: dict[str, Any], position: int) -> None:
    index = choice.get("index", position)
    if not isinstance(index, int):
        index = position
    text = choice.get("text")  # legacy completions
    if text is not None:
        collector.add_text((index, "text"), text)
    delta = choice.get("delta")
    if type(delta) is dict and len(delta) == 1:
        # Nearly every chunk of a chat stream: a delta of one piece of text, read as
        # ``_add_message`` would read it.
        content = delta.get("content")
        if type(content) is str:
            if content:
                collector.add_text((index, "content"), content)
            return
    _add_message(collector, index, delta)


def _add_responses_event(collector: OutputCollector, kind: str, event: dict[str, Any]) -> None:
    response = event.get("response")  # response.created and every other lifecycle event
    if isinstance(response, dict):
        collector.note_response_id(response.get("id"))
    output_index = event.get("output_index")
    if kind in ("response.output_text.delta", "response.refusal.delta"):
        collector.add_text(("out", output_index, event.get("content_index")), event.get("delta"))
    elif kind in (
        "response.function_call_arguments.delta",
        "response.custom_tool_call_input.delta",
    ):
        collector.add_text(("out", output_index, "arguments"), event.get("delta"))
    elif kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
        collector.add_text(("sum", output_index, event.get("summary_index")), event.get("delta"))
    elif kind == "response.output_item.added":
        item = event.get("item")
        if isinstance(item, dict):
            note_output_item(collector, item)
            if item.get("type") in ("function_call", "custom_tool_call"):
                collector.add_text(("out", output_index, "name"), item.get("name"))
    elif kind == "response.output_text.annotation.added":
        note_annotation(collector, event.get("annotation"))
    elif kind == "response.output_item.done":
        item = event.get("item")
        if isinstance(item, dict):
            note_output_item(collector, item)
    elif kind in ("response.completed", "response.incomplete", "response.failed"):
        collector.ended = True
        if isinstance(response, dict):
            usage = response.get("usage")
            if isinstance(usage, dict):
                collector.usage.merge(usage, final=True)
            output = response.get("output")
            if isinstance(output, list):
                for item in output:
                    if isinstance(item, dict):
                        note_output_item(collector, item)


def note_output_item(collector: OutputCollector, item: dict[str, Any]) -> None:
    """What of a Responses output item a later request may name: its id, its code
    interpreter's container, the files its citations name."""
    collector.note_item_id(item.get("id"))
    collector.note_item_id(item.get("container_id"))
    parts = item.get("content")
    if isinstance(parts, list):
        for part in parts:
            if isinstance(part, dict):
                annotations = part.get("annotations")
                if isinstance(annotations, list):
                    for annotation in annotations:
                        note_annotation(collector, annotation)


def note_annotation(collector: OutputCollector, annotation: object) -> None:
    """A citation of a file a code interpreter wrote in this answer's container: a later
    request that sends the message back names the file and its container. (Other citations
    name files the request itself was checked for, or none.)"""
    if isinstance(annotation, dict) and annotation.get("type") == "container_file_citation":
        collector.note_item_id(annotation.get("file_id"))
        collector.note_item_id(annotation.get("container_id"))


def _add_anthropic_event(collector: OutputCollector, kind: str, event: dict[str, Any]) -> bool:
    if kind == "content_block_delta":
        delta = event.get("delta")
        if isinstance(delta, dict):
            key = ("blk", event.get("index"))
            collector.add_text(key, delta.get("text"))
            collector.add_text(key, delta.get("partial_json"))
            collector.add_text(key, delta.get("thinking"))
        return True
    if kind == "content_block_start":
        block = event.get("content_block")
        if isinstance(block, dict):
            index = event.get("index")
            collector.add_text(("blk", index), block.get("text"))
            collector.add_text(("blk", index, "name"), block.get("name"))
        return True
    if kind == "message_start":
        message = event.get("message")
        if not isinstance(message, dict):
            return True
        collector.note_response_id(message.get("id"))
        note_container(collector, message)
        usage = message.get("usage")
        if isinstance(usage, dict):
            collector.usage.merge(usage, final=False)
        return True
    if kind == "message_delta":
        usage = event.get("usage")
        if isinstance(usage, dict):
            collector.usage.merge(usage, final=True)
        delta = event.get("delta")
        if isinstance(delta, dict):
            note_container(collector, delta)
        return True
    if kind == "message_stop":
        collector.ended = True
        return True
    return kind in ("content_block_stop", "ping", "error")


def note_container(collector: OutputCollector, message: dict[str, Any]) -> None:
    """An Anthropic answer's code-execution ``container``, which a later request names to
    go on in it: the company's, as the answer is."""
    container = message.get("container")
    if isinstance(container, dict):
        collector.note_item_id(container.get("id"))
