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
from budget_guard.counting.key_case import fold, may_fold

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
_BY_FOLD = frozenset(fold(key) for key in _REFERENCE_KEYS)
# One scan of the raw bytes decides whether the body can hold a reference at all, so the
# ordinary chat request pays a compiled scan, not a walk of its parsed JSON. Keys are matched
# as loosely as some upstreams read them (``key_case``: any case, ``_`` and ``-`` ignored), so
# the scan reads the body in lower case without those. A key can hide from it only behind a
# \u escape (JSON has no other escape that yields a letter, "_" or "-") or a character some
# parser folds into a letter, so a body with either is always walked.
_MAYBE = re.compile(
    rb'"(?:assistantid|container(?:id)?|conversation(?:id)?|fileids?|inputfileid|'
    rb'previousresponseid|responseid|skillid|threadid|vectorstoreids?|itemreference)"'
)
_SEPARATORS = b"_-"
MAX_REFERENCES = 64
"""More references than any real request carries; past it the request is refused, so one
request cannot make the guard look up an unbounded number of objects."""


class TooManyReferences(InvalidRequestBody):
    def __init__(self) -> None:
        super().__init__(f"The request refers to more than {MAX_REFERENCES} stored objects.", None)


def may_refer(body: bytes) -> bool:
    """Whether ``body`` can name an object at all (if not, there is nothing to walk)."""
    if body.find(b"\\u") >= 0 or (not body.isascii() and may_fold(body)):
        return True
    return _MAYBE.search(body.lower().translate(None, _SEPARATORS)) is not None


def object_references(data: object) -> tuple[str, ...]:
    """The object ids a parsed body refers to, in order, without repeats. Keys are matched
    as loosely as some upstream reads them: an id it may read is checked however it is
    named."""
    found: dict[str, None] = {}
    stack: list[Any] = [data]
    while stack:  # iterative: no input reaches a RecursionError
        value = stack.pop()
        if isinstance(value, dict):
            reference_item = False
            for key, item in value.items():
                if key in _REFERENCE_KEYS:
                    _collect(item, found)
                    name = key
                else:
                    name = fold(key)
                    if name in _BY_FOLD:
                        _collect(item, found)
                if name == "type" and item == "item_reference":
                    reference_item = True
                if isinstance(item, dict | list):
                    stack.append(item)
            if reference_item:
                _collect_ids(value, found)
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
        _collect_ids(value, found)


def _collect_ids(value: dict[str, Any], found: dict[str, None]) -> None:
    for key, ident in value.items():
        if isinstance(ident, str) and ident and (key == "id" or fold(key) == "id"):
            found[ident] = None
