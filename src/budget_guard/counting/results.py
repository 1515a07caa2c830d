"""The two values the middleware gets from counting: what a request costs going in, and in total."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

logger = logging.getLogger("budget_guard.counting")


class RequestTokens:
    """What is known about a request before it is sent upstream.

    ``kind`` is one of "chat", "responses", "completions", "embeddings", "messages" or "other";
    ``input_tokens`` is our tiktoken count (0 for "other"); ``max_output_tokens`` is whichever
    output cap the request gave (``max_tokens``, ``max_completion_tokens``, ``max_output_tokens``);
    ``choices`` how many outputs it asks for, each up to that cap (``n``, ``best_of``);
    ``background`` a Responses API request whose output is generated after it returns;
    ``references`` the upstream objects the body names (``previous_response_id``,
    ``file_id``...), each of which must be the calling company's own.

    The exact count may be deferred: built with ``input_tokens=None`` and a ``count``, it is
    counted the first time ``input_tokens`` is read. Most answers carry the upstream's own
    ``usage``, which is the bill, so most requests are never counted at all (issue 16: in a
    busy server, the BPE on the prompt was the largest item of the guard's CPU). ``bound`` is a
    cheap figure the exact count never exceeds, enough for an estimate that only has to be
    large enough (strict mode's hold, the snapshot cache's room check).

    Immutable by convention (slots, no setters); equal when every field is.
    """

    __slots__ = (
        "_bound",
        "_count",
        "_input",
        "background",
        "choices",
        "kind",
        "max_output_tokens",
        "model",
        "references",
        "stream",
    )

    def __init__(
        self,
        kind: str,
        model: str | None,
        input_tokens: int | None,
        stream: bool,
        max_output_tokens: int | None,
        choices: int = 1,
        background: bool = False,
        references: tuple[str, ...] = (),
        *,
        count: Callable[[], int] | None = None,
        bound: int | None = None,
    ) -> None:
        if input_tokens is None and count is None:
            raise ValueError("a deferred count needs its count function")
        self.kind = kind
        self.model = model
        self._input = input_tokens
        self._count = None if input_tokens is not None else count
        self._bound = bound
        self.stream = stream
        self.max_output_tokens = max_output_tokens
        self.choices = choices
        self.background = background
        self.references = references

    @property
    def input_tokens(self) -> int:
        tokens = self._input
        if tokens is None:
            count, self._count = self._count, None
            assert count is not None
            try:
                tokens = count()
            except Exception as error:
                # The same walk already passed under the bound: a failure here is the
                # tokenizer's own. Charging the bound errs towards the company's limit.
                if self._bound is None:
                    raise
                from budget_guard.failure import describe

                logger.error("counting a %s request failed (%s)", self.kind, describe(error))
                tokens = self._bound
            self._input = tokens
        return tokens

    @property
    def counted(self) -> bool:
        """Whether the exact count is known (made, or never deferred)."""
        return self._input is not None

    @property
    def input_bound(self) -> int:
        """The exact count once known; before, the bound when there is one (else the count
        is made now). Never less than ``input_tokens``."""
        if self._input is None and self._bound is not None:
            return self._bound
        return self.input_tokens

    def _fields(self) -> tuple[object, ...]:
        return (
            self.kind,
            self.model,
            self.input_tokens,
            self.stream,
            self.max_output_tokens,
            self.choices,
            self.background,
            self.references,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RequestTokens):
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        tokens = self._input if self._input is not None else "<deferred>"
        return (
            f"RequestTokens(kind={self.kind!r}, model={self.model!r}, input_tokens={tokens}, "
            f"stream={self.stream}, max_output_tokens={self.max_output_tokens}, "
            f"choices={self.choices}, background={self.background}, "
            f"references={self.references!r})"
        )


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
