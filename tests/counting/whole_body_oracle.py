"""The reading of a whole, parsed response body that ``json_body`` replaced, kept as the oracle
its incremental reading is checked against: the same text under the same keys, in any key
order, whitespace and chunking."""

from __future__ import annotations

from typing import Any

import orjson

from budget_guard.counting.output_collector import OutputCollector
from budget_guard.counting.output_shapes import _add_call, _add_message


def collect_response(collector: OutputCollector, body: dict[str, Any]) -> None:
    usage = body.get("usage")
    if isinstance(usage, dict):
        collector.usage.merge(usage, final=True)
    choices = body.get("choices")
    if isinstance(choices, list):
        for index, choice in enumerate(choices):
            if isinstance(choice, dict):
                _add_message(collector, index, choice.get("message"))
                collector.add_text((index, "text"), choice.get("text"))
    output = body.get("output")
    if isinstance(output, list):
        for index, item in enumerate(output):
            if isinstance(item, dict):
                _add_responses_item(collector, index, item)
    content = body.get("content")
    if isinstance(content, list) and body.get("type") == "message":
        for index, block in enumerate(content):
            if isinstance(block, dict):
                _add_anthropic_block(collector, index, block)


def _add_responses_item(collector: OutputCollector, index: int, item: dict[str, Any]) -> None:
    kind = item.get("type")
    if kind == "message":
        parts = item.get("content")
        if isinstance(parts, list):
            for part_index, part in enumerate(parts):
                if isinstance(part, dict):
                    collector.add_text(("out", index, part_index), part.get("text"))
                    collector.add_text(("out", index, part_index), part.get("refusal"))
    elif kind in ("function_call", "custom_tool_call"):
        _add_call(collector, ("out", index), item)
    elif kind == "reasoning":
        summary = item.get("summary")
        if isinstance(summary, list):
            for part_index, part in enumerate(summary):
                if isinstance(part, dict):
                    collector.add_text(("sum", index, part_index), part.get("text"))


def _add_anthropic_block(collector: OutputCollector, index: int, block: dict[str, Any]) -> None:
    kind = block.get("type")
    if kind == "text":
        collector.add_text(("blk", index), block.get("text"))
    elif kind == "thinking":
        collector.add_text(("blk", index), block.get("thinking"))
    elif kind in ("tool_use", "server_tool_use"):
        collector.add_text(("blk", index, "name"), block.get("name"))
        if "input" in block and block["input"] != {}:
            collector.add_text(("blk", index), orjson.dumps(block["input"]).decode())
