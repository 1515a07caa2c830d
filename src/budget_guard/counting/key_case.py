"""Refusing a request key that differs only in case from a key the guard reads.

The guard reads keys exactly, as OpenAI's API does. Go's ``encoding/json`` does not: it fills
a struct field from any key equal to its name ignoring case, the Kelvin sign (U+212A) counting
as ``k`` and the long s (U+017F) as ``s``, and .NET's case-insensitive option also reads the
dotless i (U+0131) as ``i``. Gateways and servers written in them (Ollama, LocalAI, Envoy AI
Gateway) sit behind budget-guard as upstreams. To such an upstream ``{"model": "gpt-4o-mini",
"Model": "o3"}`` is o3, though the guard weighed gpt-4o-mini; ``"Messages"`` is a prompt the
guard counted as none; ``"N": 10`` is ten answers. What the guard cannot read as the upstream
might, it refuses, naming the key.

Every object of a counted body is checked, but for what holds the client's own names rather
than the API's: a JSON schema's ``properties`` map (its values, schemas, are checked), and
values the guard never looks into (``metadata``, a tool call's ``arguments`` or ``input``,
``enum``...), whose keys no API reads as fields. Object references (``previous_response_id``
and the like) are read at any depth, so ``references`` matches their keys ignoring case
instead: a variant is checked as the company's own object, not refused.

Cost: a walk of the parsed body that compares each object's keys with those the guard reads
as one set operation in C, folding only the keys outside them; where one folds into a key the
guard reads, a second walk tells where (or that it sits in a map of the client's names).
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
"""What the guard reads of a JSON body of no counted shape (at its top level): how many
outputs it asks for."""

# Maps from the client's own names to schemas: the names are free, the schemas are read.
_NAME_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions"})
# Values that are data, not API fields: nothing in them is read as a field.
_OPAQUE = frozenset(
    {
        "const",
        "default",
        "enum",
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
_OPAQUE_OBJECTS = frozenset({"arguments", "input"})

# The only characters other than ASCII letters that some parser takes for an ASCII letter.
_FOLDS = str.maketrans({"\u212a": "k", "\u017f": "s", "\u0131": "i"})
_FOLDING = re.compile(b"|".join(re.escape(c.encode()) for c in "\u212a\u017f\u0131"))


def may_fold(body: bytes) -> bool:
    """Whether the raw ``body`` holds one of those characters (unescaped)."""
    return _FOLDING.search(body) is not None


def fold(key: str) -> str:
    """``key`` as a case-insensitive parser compares it with an ASCII field name."""
    return key.lower() if key.isascii() else key.translate(_FOLDS).lower()


def check_key_case(document: dict[str, Any]) -> None:
    """Raise ``InvalidRequestBody`` if an object of the counted ``document`` has a key that
    is not one the guard reads but folds to one."""
    if _may_vary(document):
        found = _first_variant(document)
        if found is not None:
            raise _refused(*found)


def check_top_key_case(document: object) -> None:
    """The same for a JSON body of no counted shape, whose top level is all the guard reads."""
    if not isinstance(document, dict):
        return
    for key in document:
        read = _variant_of(key, OTHER_READ_KEYS)
        if read is not None:
            raise _refused(key, read, key)


def _variant_of(key: str, keys: frozenset[str]) -> str | None:
    if key in keys:
        return None
    folded = fold(key)
    return folded if folded in keys else None


def _may_vary(document: dict[str, Any]) -> bool:
    """Whether some key anywhere folds into one the guard reads without being it. The cheap
    pass every body takes: an object of known keys is settled by one set comparison in C and
    only other keys are folded. Where it answers yes (a variant, though maybe in a map of the
    client's names), ``_first_variant`` tells exactly."""
    stack: list[Any] = [document]
    pop, push, containers = stack.pop, stack.append, _CONTAINERS
    while stack:
        node = pop()
        if type(node) is dict:
            keys = node.keys()
            if not keys <= _SETTLED:
                for key in keys - _SETTLED:
                    if fold(key) in READ_KEYS:
                        return True
            values: Any = node.values()
        else:
            values = node
        for value in values:
            if type(value) in containers:
                push(value)
    return False


_CONTAINERS = frozenset({dict, list})


def _first_variant(document: dict[str, Any]) -> tuple[str, str, str] | None:
    """(key, the key it stands for, its path) of the first variant, in document order.
    Iterative: no document reaches a RecursionError."""
    stack: list[tuple[Any, str, bool]] = [(document, "", False)]
    while stack:
        node, path, names = stack.pop()
        if isinstance(node, dict):
            pending = []
            for key, value in node.items():
                where = f"{path}.{key}" if path else key
                if not names:
                    read = _variant_of(key, READ_KEYS)
                    if read is not None:
                        return key, read, where
                    if key in _OPAQUE or (key in _OPAQUE_OBJECTS and isinstance(value, dict)):
                        continue
                if isinstance(value, dict | list):
                    pending.append((value, where, not names and key in _NAME_MAPS))
            stack.extend(reversed(pending))
        else:
            stack.extend(
                (item, f"{path}.[{index}]", False)
                for index, item in reversed(list(enumerate(node)))
                if isinstance(item, dict | list)
            )
    return None


def _refused(key: str, read: str, param: str) -> InvalidRequestBody:
    return InvalidRequestBody(
        f"The key '{key}' differs from '{read}' only in case (or by a letter some parsers fold "
        f"into an ASCII one). Write it as '{read}': some servers read such a key as '{read}' "
        "and others ignore it.",
        param,
    )
