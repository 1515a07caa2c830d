"""Refusing a request key that an upstream may read as a field the guard reads, but is not it.

The guard reads keys exactly, as OpenAI's API does. Other parsers match them more loosely, and
gateways and servers built on them (Ollama, LocalAI, Envoy AI Gateway in Go; ASP.NET) sit
behind budget-guard as upstreams:

- Go's ``encoding/json`` fills a struct field from any key equal to its name ignoring case,
  the Kelvin sign (U+212A) counting as ``k`` and the long s (U+017F) as ``s``; .NET's
  case-insensitive option reads the dotless i (U+0131) as ``i``; parsers that lower-case keys
  with Go's ``strings.ToLower`` (json-iterator) read the dotted capital I (U+0130) as ``i``;
  full Unicode case mapping reads ``ﬁ`` as ``fi``;
- Go's ``encoding/json/v2`` with ``case:ignore`` also ignores ``_`` and ``-``.

To such an upstream ``{"model": "gpt-4o-mini", "Model": "o3"}`` is o3, though the guard
weighed gpt-4o-mini; ``"Messages"`` is a prompt the guard counted as none; ``"maxTokens"`` a
cap it never saw; ``"N": 10`` ten answers. What the guard cannot read as the upstream might,
it refuses, naming the key.

Every object of a counted body is checked, but for what holds the client's own names rather
than the API's: a JSON schema's ``properties`` and the like (their values, schemas, are
checked), and values the guard never looks into (``metadata``, a tool call's ``arguments`` or
``input``, ``enum``, ``x-`` extensions...), whose keys no API reads as fields. Object
references (``previous_response_id`` and the like) are read at any depth, so ``references``
matches their keys by the same folding instead: a variant is checked as the company's own
object, not refused.

Cost: a walk of the parsed body that compares each object's keys with a set of known keys in
C, folding only the others; where one folds into a key the guard reads, a second walk tells
where (or that it sits in a map of the client's names).
"""

from __future__ import annotations

import re
from typing import Any

from budget_guard.counting.errors import InvalidRequestBody

# Every key the counting of a request reads, at some place in some API's body (a test reads
# them back from the counters themselves, so this list cannot fall behind them).
READ_KEYS = frozenset(
    {
        "arguments",
        "background",
        "best_of",
        "content",
        "custom",
        "data",
        "description",
        "detail",
        "enum",
        "function",
        "function_call",
        "functions",
        "id",
        "image_url",
        "include_usage",
        "input",
        "input_schema",
        "instructions",
        "items",
        "max_completion_tokens",
        "max_output_tokens",
        "max_tokens",
        "messages",
        "model",
        "n",
        "name",
        "output",
        "parameters",
        "prompt",
        "properties",
        "refusal",
        "request_id",
        "role",
        "source",
        "stream",
        "stream_options",
        "suffix",
        "summary",
        "system",
        "text",
        "thinking",
        "tool_calls",
        "tools",
        "type",
        "url",
    }
)
# Keys clients send all the time that the guard does not read: settled with the keys it reads
# by one set comparison, so the common body folds nothing.
_SETTLED = READ_KEYS | {
    "annotations",
    "audio",
    "cache_control",
    "call_id",
    "frequency_penalty",
    "logprobs",
    "metadata",
    "modalities",
    "parallel_tool_calls",
    "presence_penalty",
    "reasoning",
    "reasoning_effort",
    "response_format",
    "seed",
    "service_tier",
    "status",
    "stop",
    "store",
    "strict",
    "temperature",
    "tool_call_id",
    "tool_choice",
    "top_logprobs",
    "top_p",
    "user",
}
OTHER_READ_KEYS = frozenset({"n"})
"""What the guard reads of a JSON body of no counted shape (at its top level) or of a form:
how many outputs it asks for."""

# Maps from the client's own names to schemas: the names are free, the schemas are read.
NAME_MAPS = frozenset(
    {
        "$defs",
        "definitions",
        "dependencies",
        "dependentRequired",
        "dependentSchemas",
        "patternProperties",
        "properties",
    }
)
# Values that are data, not API fields: nothing in them is read as a field. (``x-`` keys, a
# schema's extensions, too.)
OPAQUE = frozenset(
    {
        "attributes",  # a file search result's, replayed in a Responses input
        "const",
        "default",
        "discriminator",  # its mapping is keyed by the client's own values
        "enum",
        "env",  # a local shell call's
        "example",
        "examples",
        "headers",
        "logit_bias",
        "metadata",
        "variables",
    }
)
# The same when an object: a tool call's arguments or input (Responses' ``input`` is a list of
# items, read like messages).
OPAQUE_OBJECTS = frozenset({"arguments", "input"})

# What the full case folding below does not do: the dotted and dotless i, as Go's ToLower and
# .NET's upper-casing read them, and the separators encoding/json/v2 ignores.
_FOLDS = str.maketrans({"\u0130": "i", "\u0131": "i", "_": None, "-": None})
_ASCII_FOLDS = str.maketrans("", "", "_-")
# Raw characters no ASCII-only scan sees that some parser reads as ASCII letters: the Kelvin
# sign, the long s, both i's, both sharp s's (full case folding: "ss"), and the Latin
# ligatures (U+FB00-FB06). (A test checks every code point that ``fold`` turns into ASCII.)
_FOLDING = re.compile(
    b"|".join(re.escape(c.encode()) for c in "\u212a\u017f\u0130\u0131\u00df\u1e9e")
    + rb"|\xef\xac[\x80-\x86]"
)


def may_fold(body: bytes) -> bool:
    """Whether the raw ``body`` holds one of those characters (unescaped)."""
    return _FOLDING.search(body) is not None


def fold(key: str) -> str:
    """``key`` as the loosest of those parsers compares it with an ASCII field name."""
    if key.isascii():
        return key.lower().translate(_ASCII_FOLDS) if "_" in key or "-" in key else key.lower()
    return key.translate(_FOLDS).casefold()


_READ_BY_FOLD = {fold(key): key for key in READ_KEYS}
_OTHER_READ_BY_FOLD = {fold(key): key for key in OTHER_READ_KEYS}


def check_key_case(document: dict[str, Any]) -> None:
    """Raise ``InvalidRequestBody`` if an object of the counted ``document`` has a key that
    is not one the guard reads but folds into one."""
    if _may_vary(document):
        found = _first_variant(document)
        if found is not None:
            raise _refused(*found)


def check_top_key_case(document: object) -> None:
    """The same for a JSON body of no counted shape, whose top level is all the guard reads."""
    if isinstance(document, dict):
        for key in document:
            refuse_other_variant(key)


def refuse_other_variant(key: str) -> None:
    """Refuse ``key`` (a top-level JSON key or a form field of a body of no counted shape) if
    some server reads it as a key the guard reads there (``n``) though it is not that key."""
    read = _variant_of(key, _OTHER_READ_BY_FOLD)
    if read is not None:
        raise _refused(key, read, key)


def _variant_of(key: str, read_by_fold: dict[str, str]) -> str | None:
    """The key the guard reads that ``key`` stands for without being it, if any."""
    read = read_by_fold.get(fold(key))
    return None if read is None or read == key else read


def _may_vary(document: dict[str, Any]) -> bool:
    """Whether some key anywhere folds into one the guard reads without being it. The cheap
    pass every body takes: an object of known keys is settled by one set comparison in C and
    only other keys are folded. Where it answers yes (a variant, though maybe in a map of the
    client's names), ``_first_variant`` tells exactly."""
    stack: list[Any] = [document]
    pop, push, containers, read_by_fold = stack.pop, stack.append, _CONTAINERS, _READ_BY_FOLD
    while stack:
        node = pop()
        if type(node) is dict:
            keys = node.keys()
            if not keys <= _SETTLED:
                for key in keys - _SETTLED:
                    if fold(key) in read_by_fold:
                        return True
            values: Any = node.values()
        else:
            values = node
        for value in values:
            if type(value) in containers:
                push(value)
    return False


_CONTAINERS = frozenset({dict, list})


class _Place:
    """Where a node sits, built into a path only for the key refused: a path string per
    key would cost the length of every key above it, each time."""

    __slots__ = ("key", "parent")

    def __init__(self, parent: _Place | None, key: str | int) -> None:
        self.parent = parent
        self.key = key

    def path(self) -> str:
        parts: list[str] = []
        place: _Place | None = self
        while place is not None:
            key = place.key
            parts.append(f"[{key}]" if isinstance(key, int) else key)
            place = place.parent
        return ".".join(reversed(parts))


def _first_variant(document: dict[str, Any]) -> tuple[str, str, str] | None:
    """(key, the key it stands for, its path) of the first variant, in document order.
    Iterative: no document reaches a RecursionError."""
    stack: list[tuple[Any, _Place | None, bool]] = [(document, None, False)]
    while stack:
        node, place, names = stack.pop()
        pending: list[tuple[Any, _Place | None, bool]] = []
        if isinstance(node, dict):
            for key, value in node.items():
                if not names:
                    read = _variant_of(key, _READ_BY_FOLD)
                    if read is not None:
                        return key, read, _Place(place, key).path()
                    if (
                        key in OPAQUE
                        or key.startswith("x-")
                        or (key in OPAQUE_OBJECTS and isinstance(value, dict))
                    ):
                        continue
                if isinstance(value, dict | list):
                    inner = not names and key in NAME_MAPS
                    pending.append((value, _Place(place, key), inner))
        else:
            for index, item in enumerate(node):
                if isinstance(item, dict | list):
                    pending.append((item, _Place(place, index), False))
        stack.extend(reversed(pending))
    return None


def _refused(key: str, read: str, param: str) -> InvalidRequestBody:
    return InvalidRequestBody(
        f"The key '{key}' is not '{read}', but some servers read it as '{read}' (they ignore "
        f"case, and some '_' and '-'), and others ignore it. Write it as '{read}'.",
        param,
    )
