"""One company's usage over the rolling window, as people read it: tokens per day, what is
left, and when budget comes back. The usage page and ``budget-guard usage`` both show this,
so the browser and the terminal never disagree.

Days are UTC calendar days. The store keeps usage in buckets (6 hours for a 30-day window);
each bucket is counted on the day it starts, which is exact whenever the bucket width divides
a day (every window of up to 120 days with the default bucket width).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

from budget_guard.budget.ledger import Ledger
from budget_guard.budget.snapshot import UsageSnapshot
from budget_guard.budget.window import SECONDS_PER_DAY
from budget_guard.timefmt import format_duration, format_time

__all__ = [
    "DayUsage",
    "UsageReport",
    "breakdown_text",
    "format_duration",
    "format_time",
    "usage_report",
]

_EPOCH_DAY = date(1970, 1, 1)


@dataclass(frozen=True, slots=True)
class DayUsage:
    day: date
    """A UTC calendar day."""
    tokens: int


@dataclass(frozen=True, slots=True)
class UsageReport:
    snapshot: UsageSnapshot
    days: tuple[DayUsage, ...]
    """Every day the live window touches, oldest first, days without usage included."""
    generated_at: float
    next_release_at: float | None
    """When the oldest usage still counting stops counting (``None``: no usage)."""
    next_release_tokens: int
    limit_override: int | None = None
    """The company's run-time limit, when an admin set one (it is the limit in force)."""
    alert_thresholds: tuple[float, ...] = ()
    """The ``[alerts]`` thresholds, as fractions of the limit (none when alerts are off)."""
    breakdown: dict[str, int] = field(default_factory=dict)
    """Raw tokens by kind recorded in the window (input, cached_input, cache_write,
    cache_read, output, reasoning), from the upstream's usage where it reported them. Budget
    tokens are these weighted when ``[budget.weights]`` is set, and usage recorded through the
    endpoint has none, so they need not add up to ``tokens_used``."""

    @property
    def company_id(self) -> UUID:
        return self.snapshot.company_id

    def to_json(self) -> dict[str, Any]:
        """JSON for scripts (``budget-guard usage --json``) in the usage API's names and Guid
        format (camelCase, 32 hex digits), plus the report's extras; times in ISO 8601 UTC."""
        snap = self.snapshot
        frees: str | None
        if snap.frees_at is None:
            frees = None
        elif math.isinf(snap.frees_at):
            frees = "never"
        else:
            frees = _iso(snap.frees_at)
        return {
            "companyId": snap.company_id.hex,
            "tokensUsed": snap.tokens_used,
            "tokenLimit": snap.token_limit,
            "tokensRemaining": snap.tokens_remaining,
            "isWithinBudget": snap.is_within_budget,
            "windowDays": snap.window_days,
            "tokensReserved": snap.tokens_reserved,
            "freesAt": frees,
            "nextRelease": None
            if self.next_release_at is None
            else {"at": _iso(self.next_release_at), "tokens": self.next_release_tokens},
            "limitOverride": self.limit_override,
            "alertThresholds": list(self.alert_thresholds),
            "days": [{"date": d.day.isoformat(), "tokens": d.tokens} for d in self.days],
            "breakdown": dict(self.breakdown),
            "generatedAt": _iso(self.generated_at),
        }


def _day_of(t: float) -> date:
    return _EPOCH_DAY + timedelta(days=int(t // SECONDS_PER_DAY))


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


async def usage_report(ledger: Ledger, company_id: UUID, now: float) -> UsageReport:
    snapshot = await ledger.snapshot(company_id)
    buckets = await ledger.buckets(company_id)
    breakdown = await ledger.breakdown(company_id)
    window = ledger.window
    first_bucket = window.bucket_of(now) - window.buckets
    first_day = _day_of(first_bucket * window.bucket_seconds)
    last_day = _day_of(now)
    per_day = {first_day + timedelta(days=i): 0 for i in range((last_day - first_day).days + 1)}
    for start, tokens in buckets:
        day = min(max(_day_of(start), first_day), last_day)
        per_day[day] += tokens
    release_at, release_tokens = None, 0
    if buckets:
        start, release_tokens = buckets[0]
        release_at = window.expiry_of(window.bucket_of(start))
    return UsageReport(
        snapshot=snapshot,
        days=tuple(DayUsage(day, tokens) for day, tokens in per_day.items()),
        generated_at=now,
        next_release_at=release_at,
        next_release_tokens=release_tokens,
        limit_override=(await ledger.limit_info(company_id)).override,
        alert_thresholds=ledger.thresholds,
        breakdown=breakdown,
    )


def format_thresholds(thresholds: tuple[float, ...]) -> str:
    """``80 %, 95 %, 100 % of the limit``"""
    return ", ".join(f"{t * 100:g} %" for t in thresholds) + " of the limit"


KIND_LABELS = {
    "input": "input",
    "cached_input": "cached input",
    "cache_write": "cache writes",
    "cache_read": "cache reads",
    "output": "output",
    "reasoning": "reasoning",
}
"""How people read each breakdown kind, in the order they are shown."""


def breakdown_text(report: UsageReport) -> str | None:
    """``input 20,000 · cached input 8,192 · output 1,000``: the kinds that have tokens, or
    None when the window has no breakdown at all."""
    parts = [
        f"{label} {report.breakdown.get(kind, 0):,}"
        for kind, label in KIND_LABELS.items()
        if report.breakdown.get(kind, 0)
    ]
    return " · ".join(parts) if parts else None
