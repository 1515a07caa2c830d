"""Times and durations for people: the usage page, the usage command and the 429 message."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from budget_guard.budget.window import SECONDS_PER_DAY

__all__ = ["format_duration", "format_time"]


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
