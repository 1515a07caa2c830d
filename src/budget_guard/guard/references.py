"""Upstream objects a request body points at, which must be the calling company's own.

A chat or a response can pull a stored object into its context: ``previous_response_id``
continues another conversation, a ``file_id`` content part reads a file, ``vector_store_ids``
searches a store. Under the operator's one upstream key every company's objects are
reachable that way, so the guard collects every such reference and forwards the request
only when each one is an object the company created through the guard.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

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
        "thread_id",
        "vector_store_id",
        "vector_store_ids",
    }
)
# One pass over the raw bytes decides whether the body can hold a reference at all, so the
# ordinary chat request pays a memchr-speed scan, not a walk of its parsed JSON.
_MAYBE = re.compile(
    rb'"(?:assistant_id|container(?:_id)?|conversation(?:_id)?|file_ids?|input_file_id|'
    rb'previous_response_id|response_id|thread_id|vector_store_ids?)"'
)
MAX_REFERENCES = 64
"""More references than any real request carries; past it the request is refused, so one
request cannot make the guard look up an unbounded number of objects."""


class TooManyReferences(Exception):
    pass


def object_references(body: bytes) -> tuple[str, ...]:
    """The object ids ``body`` refers to, in order, without repeats. A body that is not JSON
    refers to nothing the upstream would read as an object."""
    if _MAYBE.search(body) is None:
        return ()
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ()
    found: dict[str, None] = {}
    stack: list[Any] = [data]
    while stack:  # iterative: no input reaches a RecursionError
        value = stack.pop()
        if isinstance(value, dict):
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
