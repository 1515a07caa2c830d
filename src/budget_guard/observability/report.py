"""One company's usage over the rolling window, as people read it: tokens per day, what is
left, and when budget comes back. The usage page and ``budget-guard usage`` both show this,
so the browser and the terminal never disagree.

Days are UTC calendar days. The store keeps usage in buckets (6 hours for a 30-day window);
each bucket is counted on the day it starts, which is exact whenever the bucket width divides
a day (every window of up to 120 days with the default bucket width).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

from budget_guard.ledger import Ledger
from budget_guard.snapshot import UsageSnapshot
from budget_guard.window import SECONDS_PER_DAY

__all__ = ["DayUsage", "UsageReport", "format_duration", "format_time", "usage_report"]

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

    @property
    def company_id(self) -> UUID:
        return self.snapshot.company_id

    def to_json(self) -> dict[str, Any]:
        """Plain JSON for scripts (``budget-guard usage --json``); times in ISO 8601 UTC."""
        snap = self.snapshot
        frees: str | None
        if snap.frees_at is None:
            frees = None
        elif math.isinf(snap.frees_at):
            frees = "never"
        else:
            frees = _iso(snap.frees_at)
        return {
            "company_id": str(snap.company_id),
            "token_limit": snap.token_limit,
            "tokens_used": snap.tokens_used,
            "tokens_remaining": snap.tokens_remaining,
            "tokens_reserved": snap.tokens_reserved,
            "window_days": snap.window_days,
            "within_budget": snap.is_within_budget,
            "frees_at": frees,
            "next_release": None
            if self.next_release_at is None
            else {"at": _iso(self.next_release_at), "tokens": self.next_release_tokens},
            "limit_override": self.limit_override,
            "alert_thresholds": list(self.alert_thresholds),
            "days": [{"date": d.day.isoformat(), "tokens": d.tokens} for d in self.days],
            "generated_at": _iso(self.generated_at),
        }


def _day_of(t: float) -> date:
    return _EPOCH_DAY + timedelta(days=int(t // SECONDS_PER_DAY))


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


async def usage_report(ledger: Ledger, company_id: UUID, now: float) -> UsageReport:
    snapshot = await ledger.snapshot(company_id)
    buckets = await ledger.buckets(company_id)
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
    )


def format_thresholds(thresholds: tuple[float, ...]) -> str:
    """``80 %, 95 %, 100 % of the limit``"""
    return ", ".join(f"{t * 100:g} %" for t in thresholds) + " of the limit"


def format_time(t: float) -> str:
    """``2024-05-01 14:00 UTC``: minutes are as precise as a bucketed window gets."""
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M UTC")


def format_duration(seconds: float) -> str:
    """``3 d 4 h``, ``5 h 12 min``, ``42 s``: two units at most, for people."""
    whole = max(0, math.ceil(seconds))
    days, rest = divmod(whole, SECONDS_PER_DAY)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min"
    return f"{secs} s"
