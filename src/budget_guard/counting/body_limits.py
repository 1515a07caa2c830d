"""Bounds on the shape of a counted request body, checked once before anything walks it.

The body is already within ``max_body_bytes`` and parsed (orjson itself stops at 1024 levels),
but what counts it walks nested structures: Anthropic ``tool_result`` content, JSON schemas of
tool parameters, ``tool_use`` inputs it re-serializes (orjson refuses to write past 254 levels).
Checking depth here, iteratively, means no client can make any of those recurse past a known
bound: every body either fits or is a 400 naming the limit and the field, never a
``RecursionError`` or a serializer error turned into a 500.

Array lengths and key counts cap the work one structure can ask for (each schema property and
each array item costs a Python step). Total work stays linear in the body's bytes either way.

The defaults are far above what real traffic needs: OpenAI's strict schemas allow 10 levels of
nested objects, which written with an array and an ``anyOf`` at every level is 56 levels of body
(see the tests); its largest context window, 1M tokens, sent as token ids is a 1M-item array;
its schemas allow 5,000 properties in all.
"""

from __future__ import annotations

from dataclasses import dataclass

from budget_guard.counting.errors import InvalidRequestBody

DEFAULT_MAX_DEPTH = 128
DEFAULT_MAX_ARRAY_ITEMS = 1_000_000
DEFAULT_MAX_OBJECT_KEYS = 10_000
MAX_DEPTH_CEILING = 200
"""The deepest a configuration may allow: ``tool_use`` inputs sit 5 levels into a body and are
re-serialized by orjson, which stops at 254; recursion stays far below Python's limit."""

_CONTAINERS = frozenset({dict, list})
# A path into the body as a linked list: (parent, key or index); None is the body itself.
_Path = tuple["_Path", str | int] | None


@dataclass(frozen=True, slots=True)
class BodyLimits:
    """The bounds a counted body must stay within; each names the setting that raises it."""

    max_depth: int = DEFAULT_MAX_DEPTH
    """Arrays and objects nested inside one another, the body object itself being level 1."""
    max_array_items: int = DEFAULT_MAX_ARRAY_ITEMS
    max_object_keys: int = DEFAULT_MAX_OBJECT_KEYS

    def __post_init__(self) -> None:
        if not 1 <= self.max_depth <= MAX_DEPTH_CEILING:
            raise ValueError(f"max_depth must be between 1 and {MAX_DEPTH_CEILING}")
        if self.max_array_items < 1 or self.max_object_keys < 1:
            raise ValueError("max_array_items and max_object_keys must be at least 1")


def within_by_size(raw: bytes, limits: BodyLimits) -> bool:
    """Whether the body's bytes alone show it is within ``limits``, so that the walk of
    :func:`check_body_shape` can be skipped (it is most of what a short chat request costs
    to read). Nesting needs an opening bracket per level, so at most ``max_depth`` of them
    (counted inside strings too: an overestimate) cannot nest deeper; an array of n items
    takes at least 2n - 1 bytes and an object of n distinct keys at least 5n - 1
    (``"":0,``), so a body shorter than that holds no longer ones."""
    size = len(raw)
    return (
        size < 2 * limits.max_array_items
        and size < 5 * limits.max_object_keys
        and raw.count(b"[") + raw.count(b"{") <= limits.max_depth
    )


def check_body_shape(body: object, limits: BodyLimits) -> None:
    """Raise ``InvalidRequestBody`` naming the first structure past ``limits``.

    Iterative, so the check itself cannot recurse; containers holding only scalars (a token-id
    array, a string list) are skipped with one C-level pass over their item types.
    """
    stack: list[tuple[object, int, _Path]] = [(body, 1, None)]
    while stack:
        node, depth, path = stack.pop()
        if depth > limits.max_depth:
            raise _refused(
                path,
                "nesting too deep. Expected at most "
                f"{limits.max_depth} levels of nested arrays and objects in the body, but got "
                "more",
                "max_body_depth",
            )
        if type(node) is dict:
            if len(node) > limits.max_object_keys:
                raise _refused(
                    path,
                    "object has too many keys. Expected an object with at most "
                    f"{limits.max_object_keys} keys, but got {len(node)} keys instead",
                    "max_body_object_keys",
                )
            if _CONTAINERS.isdisjoint(set(map(type, node.values()))):
                continue
            for key, value in node.items():
                if type(value) in _CONTAINERS:
                    stack.append((value, depth + 1, (path, key)))
        elif type(node) is list:
            if len(node) > limits.max_array_items:
                raise _refused(
                    path,
                    "array too long. Expected an array with maximum length "
                    f"{limits.max_array_items}, but got an array with length {len(node)} "
                    "instead",
                    "max_body_array_items",
                )
            if _CONTAINERS.isdisjoint(set(map(type, node))):
                continue
            for index, value in enumerate(node):
                if type(value) in _CONTAINERS:
                    stack.append((value, depth + 1, (path, index)))


def _refused(path: _Path, problem: str, setting: str) -> InvalidRequestBody:
    """OpenAI's wording ("Invalid 'messages': array too long. Expected ...") plus the setting
    that moves the bound, so an operator seeing the 400 in a client's log knows what to change."""
    param = _param(path)
    subject = f"Invalid '{param}'" if param else "Invalid request body"
    return InvalidRequestBody(f"{subject}: {problem} (budget-guard limit guard.{setting}).", param)


def _param(path: _Path) -> str | None:
    """OpenAI's notation for a field, ``messages.[0].content``; None for the body itself."""
    parts: list[str] = []
    while path is not None:
        path, key = path
        parts.append(f"[{key}]" if isinstance(key, int) else key)
    return ".".join(reversed(parts)) or None
