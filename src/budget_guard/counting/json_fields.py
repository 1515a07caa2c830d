"""Typed reads of request fields that fail with OpenAI's wording when a client sends the wrong type.

Only fields that counting reads are checked, and only at the level OpenAI itself validates;
anything else is left for the upstream to judge.
"""

from __future__ import annotations

from typing import Any

from budget_guard.counting.errors import InvalidRequestBody


def describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "an unsupported value"


def invalid_type(param: str, expected: str, value: object) -> InvalidRequestBody:
    return InvalidRequestBody(
        f"Invalid type for '{param}': expected {expected}, but got {describe(value)} instead.",
        param,
    )


def child(parent: str, key: str) -> str:
    return f"{parent}.{key}" if parent else key


def as_object(value: object, param: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid_type(param, "an object", value)
    return value


def get_str(obj: dict[str, Any], key: str, parent: str = "") -> str | None:
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    raise invalid_type(child(parent, key), "a string", value)


def get_bool(obj: dict[str, Any], key: str, parent: str = "") -> bool | None:
    value = obj.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise invalid_type(child(parent, key), "a boolean", value)


def get_int(obj: dict[str, Any], key: str, parent: str = "") -> int | None:
    value = obj.get(key)
    if value is None or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise invalid_type(child(parent, key), "an integer", value)


def get_list(obj: dict[str, Any], key: str, parent: str = "") -> list[Any] | None:
    value = obj.get(key)
    if value is None or isinstance(value, list):
        return value
    raise invalid_type(child(parent, key), "an array", value)


def get_object(obj: dict[str, Any], key: str, parent: str = "") -> dict[str, Any] | None:
    value = obj.get(key)
    if value is None or isinstance(value, dict):
        return value
    raise invalid_type(child(parent, key), "an object", value)
