"""Reading the token usage an upstream reports, in every shape the supported APIs use.

Chat/Completions/Embeddings report ``prompt_tokens``/``completion_tokens``; the Responses API
``input_tokens``/``output_tokens``; Anthropic ``input_tokens`` plus its cache counters
(``cache_creation_input_tokens``, ``cache_read_input_tokens``, which its ``input_tokens`` excludes)
and ``output_tokens``. Anthropic streams report usage in pieces (``message_start``, then
cumulative ``message_delta``), so fields are merged, the latest value of each winning.

OpenAI's details are read into the breakdown: ``prompt_tokens_details.cached_tokens`` (Responses:
``input_tokens_details``) and ``completion_tokens_details.reasoning_tokens`` (Responses:
``output_tokens_details``).
"""

from __future__ import annotations

from typing import Any

_ANTHROPIC_CACHE_FIELDS = ("cache_creation_input_tokens", "cache_read_input_tokens")
# Nested detail objects -> (field inside, the flat name it is kept under).
_DETAILS = {
    "prompt_tokens_details": ("cached_tokens", "cached_tokens"),
    "input_tokens_details": ("cached_tokens", "cached_tokens"),
    "completion_tokens_details": ("reasoning_tokens", "reasoning_tokens"),
    "output_tokens_details": ("reasoning_tokens", "reasoning_tokens"),
}


def _count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class UsageReport:
    """The usage fields seen so far, and whether the upstream has given its final figures."""

    __slots__ = ("_fields", "final")

    def __init__(self) -> None:
        self._fields: dict[str, int] = {}
        self.final = False

    def merge(self, usage: dict[str, Any], *, final: bool) -> None:
        fields = self._fields
        for key, value in usage.items():
            if _count(value):
                fields[key] = value
            elif key in _DETAILS and isinstance(value, dict):
                inner, name = _DETAILS[key]
                detail = value.get(inner)
                if _count(detail):
                    fields[name] = detail
        self.final = self.final or final

    def detail(self, name: str) -> int:
        """One breakdown figure (``cached_tokens``, ``reasoning_tokens``,
        ``cache_creation_input_tokens``, ``cache_read_input_tokens``); 0 when not reported."""
        return self._fields.get(name, 0)

    @property
    def input_tokens(self) -> int | None:
        fields = self._fields
        if "prompt_tokens" in fields:
            return fields["prompt_tokens"]
        if "input_tokens" in fields:
            return fields["input_tokens"] + sum(
                fields.get(key, 0) for key in _ANTHROPIC_CACHE_FIELDS
            )
        return None

    @property
    def total_tokens(self) -> int | None:
        """Everything reported, for routes of no known shape (images, audio) that report
        ``input_tokens``/``output_tokens`` or only ``total_tokens``."""
        input_tokens, output_tokens = self.input_tokens, self.output_tokens
        if input_tokens is not None or output_tokens is not None:
            return (input_tokens or 0) + (output_tokens or 0)
        return self._fields.get("total_tokens")

    @property
    def output_tokens(self) -> int | None:
        fields = self._fields
        if "completion_tokens" in fields:
            return fields["completion_tokens"]
        if "output_tokens" in fields:
            return fields["output_tokens"]
        if "prompt_tokens" in fields:  # embeddings: prompt and total only
            return max(
                fields.get("total_tokens", fields["prompt_tokens"]) - fields["prompt_tokens"], 0
            )
        return None
