"""What the guard answers by itself on the proxy path, in OpenAI's error shape, so that the
OpenAI SDKs raise the right exception (401 AuthenticationError, 429 RateLimitError...)."""

from __future__ import annotations

import math

from starlette.types import Send

from budget_guard.budget.snapshot import UsageSnapshot
from budget_guard.proxy.openai_errors import send_openai_error
from budget_guard.timefmt import format_duration, format_time

SHOULD_NOT_RETRY_AFTER = 60.0
"""Past this wait the 429 tells OpenAI's SDKs not to retry (``x-should-retry: false``)."""


def budget_headers(snapshot: UsageSnapshot | None) -> list[tuple[bytes, bytes]]:
    if snapshot is None:
        return []
    return [
        (b"x-budget-token-limit", str(snapshot.token_limit).encode()),
        (b"x-budget-tokens-used", str(snapshot.tokens_used).encode()),
        (b"x-budget-tokens-remaining", str(snapshot.tokens_remaining).encode()),
        (b"x-budget-window-days", str(snapshot.window_days).encode()),
    ]


async def send_budget_exceeded(send: Send, snapshot: UsageSnapshot, now: float) -> None:
    """429 with ``Retry-After`` from the ledger: when the rolling window frees enough."""
    wait = snapshot.retry_after(now)
    if wait is None or math.isinf(wait):
        # Within budget but the reservation did not fit, or a limit of 0 (never frees).
        seconds = 1 if wait is None else snapshot.window_days * 86_400
    else:
        seconds = max(1, math.ceil(wait))
    if snapshot.token_limit == 0:
        when = "This company's token limit is 0."
    else:
        # In words and as a time: "2597933 seconds" says nothing to a person (the seconds
        # stay in Retry-After, for programs).
        when = (
            f"The budget frees up in {format_duration(seconds)}, "
            f"at {format_time(now + seconds)}, if nothing more is recorded."
        )
    message = (
        f"Token budget exceeded: {snapshot.tokens_used} of {snapshot.token_limit} tokens used "
        f"in the last {snapshot.window_days} days. {when}"
    )
    headers = [*budget_headers(snapshot), (b"retry-after", str(seconds).encode())]
    if seconds > SHOULD_NOT_RETRY_AFTER:
        headers.append((b"x-should-retry", b"false"))
    await send_openai_error(
        send,
        429,
        message,
        type_="insufficient_quota",
        code="token_budget_exceeded",
        headers=headers,
    )
