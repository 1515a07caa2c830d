r"""Upstream objects a request body points at, which must be the calling company's own.

A chat or a response can pull a stored object into its context: ``previous_response_id``
continues another conversation, a ``file_id`` content part reads a file, ``vector_store_ids``
searches a store, an ``item_reference`` replays a stored item. Under the operator's one
upstream key every company's objects are reachable that way, so the guard collects every
such reference (from the parsed body, so escaped keys such as ``"file_i\u0064"`` are seen as
the upstream sees them) and forwards the request only when each one is an object the company
created through the guard.
"""

from __future__ import annotations

import re
from typing import Any

from budget_guard.counting.errors import InvalidRequestBody

# Keys whose string value (or list of strings) names an upstream object.
_REFERENCE_KEYS = frozenset(
    {
        "assistant_id",
        "container",
        "container_id",
        "conversation",
        "conversation_id",
        "file_id",
        "file_ids",
        "input_file_id",
        "previous_response_id",
        "response_id",
        "skill_id",
        "thread_id",
        "vector_store_id",
        "vector_store_ids",
    }
)
# One pass over the raw bytes decides whether the body can hold a reference at all, so the
# ordinary chat request pays a memchr-speed scan, not a walk of its parsed JSON. A key can
# only hide from it behind a \u escape (JSON has no other escape that yields a letter or
# "_"), so a body with one is always walked.
_MAYBE = re.compile(
    rb'\\u|"(?:assistant_id|container(?:_id)?|conversation(?:_id)?|file_ids?|input_file_id|'
    rb'previous_response_id|response_id|skill_id|thread_id|vector_store_ids?|item_reference)"'
)
MAX_REFERENCES = 64
"""More references than any real request carries; past it the request is refused, so one
request cannot make the guard look up an unbounded number of objects."""


class TooManyReferences(InvalidRequestBody):
    def __init__(self) -> None:
        super().__init__(f"The request refers to more than {MAX_REFERENCES} stored objects.", None)


def may_refer(body: bytes) -> bool:
    """Whether ``body`` can name an object at all (if not, there is nothing to walk)."""
    return _MAYBE.search(body) is not None


def object_references(data: object) -> tuple[str, ...]:
    """The object ids a parsed body refers to, in order, without repeats."""
    found: dict[str, None] = {}
    stack: list[Any] = [data]
    while stack:  # iterative: no input reaches a RecursionError
        value = stack.pop()
        if isinstance(value, dict):
            if value.get("type") == "item_reference":
                _collect(value.get("id"), found)
            for key, item in value.items():
                if key in _REFERENCE_KEYS:
                    _collect(item, found)
                if isinstance(item, dict | list):
                    stack.append(item)
        elif isinstance(value, list):
            stack.extend(item for item in value if isinstance(item, dict | list))
        if len(found) > MAX_REFERENCES:
            raise TooManyReferences
    return tuple(found)


def _collect(value: object, found: dict[str, None]) -> None:
    if isinstance(value, str):
        if value:
            found[value] = None
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, str) and item:
                found[item] = None
    elif isinstance(value, dict):  # {"conversation": {"id": "conv_..."}}
        ident = value.get("id")
        if isinstance(ident, str) and ident:
            found[ident] = None
