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


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """What a finished (or interrupted) exchange cost.

    ``source`` is "upstream" when both numbers are the upstream's own report, "counted" when the
    output (and, unless the upstream reported it, the input) comes from tiktoken.
    """

    input_tokens: int
    output_tokens: int
    source: str

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens
