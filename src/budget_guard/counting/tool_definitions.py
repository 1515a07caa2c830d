"""Collect the function definitions a request declares, whatever API shape declares them."""

from __future__ import annotations

from typing import Any

from budget_guard.counting.json_fields import as_object, get_list


def openai_function_definitions(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Definitions from ``tools`` (Chat's nested or Responses' flat shape) and legacy ``functions``.

    Built-in tools (web search, file search...) have no published token price and are skipped.
    """
    definitions: list[dict[str, Any]] = []
    for index, raw in enumerate(get_list(body, "tools") or ()):
        tool = as_object(raw, f"tools.[{index}]")
        nested = tool.get("function") or tool.get("custom")
        if isinstance(nested, dict):
            definitions.append(nested)
        elif tool.get("type") in ("function", "custom") and "name" in tool:
            definitions.append(tool)
    for index, raw in enumerate(get_list(body, "functions") or ()):
        definitions.append(as_object(raw, f"functions.[{index}]"))
    return definitions


def anthropic_function_definitions(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Anthropic tools, renamed to the OpenAI keys the definition rule reads."""
    definitions: list[dict[str, Any]] = []
    for index, raw in enumerate(get_list(body, "tools") or ()):
        tool = as_object(raw, f"tools.[{index}]")
        definitions.append(
            {
                "name": tool.get("name"),
                "description": tool.get("description"),
                "parameters": tool.get("input_schema"),
            }
        )
    return definitions
