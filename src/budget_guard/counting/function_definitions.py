"""Tokens the upstream spends on tool (function) definitions, by OpenAI's published rule.

The rule and its constants come from OpenAI's cookbook "How to count tokens with tiktoken": each
function costs a fixed opening (7 tokens on o200k models, 10 on cl100k models) plus
``name:description``; a parameter list costs 3, each property 3 plus ``name:type:description``,
an enum -3 plus 3 and its text per value; the list of functions closes with 12. A trailing period
of a description is dropped, as the upstream does. Nested object properties are counted by the
same property rule (the cookbook does not cover them; this is an estimate).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import tiktoken

from budget_guard.counting.encoding_lookup import count_text

_FUNCTION_OPENING_O200K = 7
_FUNCTION_OPENING_OTHER = 10
_PROPERTIES_OPENING = 3
_PROPERTY = 3
_ENUM_OPENING = -3
_ENUM_ITEM = 3
_FUNCTIONS_CLOSING = 12


def count_function_definitions(
    functions: Iterable[dict[str, Any]], encoding: tiktoken.Encoding
) -> int:
    """Tokens for definitions given as dicts with ``name``, ``description``, ``parameters``."""
    opening = (
        _FUNCTION_OPENING_O200K if encoding.name.startswith("o200k") else _FUNCTION_OPENING_OTHER
    )
    total = 0
    for function in functions:
        name = _text(function.get("name"))
        description = _text(function.get("description")).removesuffix(".")
        total += opening + count_text(encoding, f"{name}:{description}")
        parameters = function.get("parameters")
        if isinstance(parameters, dict):
            total += _properties_tokens(parameters.get("properties"), encoding)
    return total + _FUNCTIONS_CLOSING if total else 0


def _properties_tokens(properties: object, encoding: tiktoken.Encoding) -> int:
    """Tokens of a ``properties`` map and every map nested in it, walked with a stack rather
    than recursion so no schema depth can exhaust the interpreter's stack."""
    total = 0
    pending = [properties]
    while pending:
        properties = pending.pop()
        if not isinstance(properties, dict) or not properties:
            continue
        total += _PROPERTIES_OPENING
        for key, schema in properties.items():
            total += _PROPERTY
            if not isinstance(schema, dict):
                total += count_text(encoding, f"{key}::")
                continue
            enum = schema.get("enum")
            if isinstance(enum, list):
                total += _ENUM_OPENING
                for item in enum:
                    total += _ENUM_ITEM + count_text(encoding, _text(item))
            description = _text(schema.get("description")).removesuffix(".")
            total += count_text(encoding, f"{key}:{_type_text(schema.get('type'))}:{description}")
            pending.append(schema.get("properties"))
            items = schema.get("items")
            if isinstance(items, dict):
                pending.append(items.get("properties"))
    return total


def _type_text(value: object) -> str:
    if isinstance(value, list):
        return " | ".join(_text(item) for item in value)
    return _text(value)


def _text(value: object) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else str(value)
