"""Refusing a request body that names one key twice in the same object.

JSON parsers disagree on such a body: orjson, Python, Go and JavaScript keep the last value,
others keep the first or refuse it. The guard reads one value and charges, weighs, routes and
checks object ownership by it; an upstream that reads the other would serve a request the guard
never judged (another company's ``previous_response_id`` in front of one of the caller's own,
a dear ``model`` in front of a cheap one). What the guard cannot read as the upstream will, it
refuses, naming the key.

Checking costs a fraction of the parse on most bodies, without a second parse: every object
member puts exactly one colon outside strings, and unless a ``\\u003a`` escape writes one,
every colon inside a string is a colon in the parsed text too (no other escape decodes to a
colon). So the body's colons equal those of the parsed document written out again
(``orjson.dumps``) exactly when no member was dropped; a dropped duplicate takes at least its
own colon with it. A body with an escaped colon (it would tip the count), or whose count
differs, is parsed once more keeping every pair, which also finds where the repeated key is.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from budget_guard.counting.errors import InvalidRequestBody


def check_no_duplicate_keys(body: bytes, document: Any) -> None:
    """Raise ``InvalidRequestBody`` if ``body`` (which parsed to ``document``) repeats a key
    within one object. ``document`` must have passed the body's shape limits: the slow path
    recurses as deep as it nests."""
    if (
        body.find(b"\\u003a") < 0  # find, not in: see counting.sse
        and body.find(b"\\u003A") < 0
        and body.count(b":") == orjson.dumps(document).count(b":")
    ):
        return
    param = _first_repeated(json.loads(body, object_pairs_hook=_Pairs), None)
    if param is not None:
        raise InvalidRequestBody(
            f"The key '{param}' appears more than once in one object of your request. Each "
            "key may appear only once: parsers disagree on which value counts.",
            param,
        )


class _Pairs(list[tuple[str, Any]]):
    """An object as written, every member kept in order."""


def _first_repeated(node: Any, path: str | None) -> str | None:
    """The path (OpenAI's notation, ``messages.[0].content``) of the first repeated key."""
    if isinstance(node, _Pairs):
        seen: set[str] = set()
        for key, value in node:
            where = key if path is None else f"{path}.{key}"
            if key in seen:
                return where
            seen.add(key)
            found = _first_repeated(value, where)
            if found is not None:
                return found
    elif isinstance(node, list):
        for index, item in enumerate(node):
            found = _first_repeated(item, f"{path}.[{index}]" if path else f"[{index}]")
            if found is not None:
                return found
    return None
