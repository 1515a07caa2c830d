"""Token counting for budget-guard: exact with tiktoken where OpenAI documents the rules,
honest estimates where it does not, and the upstream's own usage when it reports one.

The middleware calls ``TokenCounter.count_request`` before forwarding a request and feeds the
response through the ``ResponseMeter`` that ``TokenCounter.meter`` returns.
"""

from __future__ import annotations

from budget_guard.counting.counter import TokenCounter
from budget_guard.counting.errors import InvalidRequestBody
from budget_guard.counting.meter import ResponseMeter
from budget_guard.counting.results import RequestTokens, TokenUsage
from budget_guard.encodings import preload as preload_encodings

__all__ = [
    "InvalidRequestBody",
    "RequestTokens",
    "ResponseMeter",
    "TokenCounter",
    "TokenUsage",
    "preload_encodings",
]
