"""The two values the middleware gets from counting: what a request costs going in, and in total."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RequestTokens:
    """What is known about a request before it is sent upstream.

    ``kind`` is one of "chat", "responses", "completions", "embeddings", "messages" or "other";
    ``input_tokens`` is our tiktoken count (0 for "other"); ``max_output_tokens`` is whichever
    output cap the request gave (``max_tokens``, ``max_completion_tokens``, ``max_output_tokens``);
    ``choices`` how many outputs it asks for, each up to that cap (``n``, ``best_of``);
    ``background`` a Responses API request whose output is generated after it returns.
    """

    kind: str
    model: str | None
    input_tokens: int
    stream: bool
    max_output_tokens: int | None
    choices: int = 1
    background: bool = False
    references: tuple[str, ...] = ()
    """Upstream objects the body names (``previous_response_id``, ``file_id``...): each must
    be the calling company's own."""


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """What a finished (or interrupted) exchange cost.

    ``source`` is "upstream" when both numbers are the upstream's own report, "counted" when the
    output (and, unless the upstream reported it, the input) comes from tiktoken.

    The breakdown is what the upstream's ``usage`` said, 0 where it said nothing (a counted
    exchange knows no caches): ``cached_input_tokens`` (OpenAI's ``cached_tokens``),
    ``cache_write_tokens`` and ``cache_read_tokens`` (Anthropic's ``cache_creation_input_tokens``
    and ``cache_read_input_tokens``) are parts of ``input_tokens``; ``reasoning_tokens`` is part
    of ``output_tokens``.
    """

    input_tokens: int
    output_tokens: int
    source: str
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0
    reasoning_tokens: int = 0

    @property
    def uncached_input_tokens(self) -> int:
        """Input read at the full price: neither served from nor written to a cache."""
        cached = self.cached_input_tokens + self.cache_write_tokens + self.cache_read_tokens
        return max(self.input_tokens - cached, 0)

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens
