"""The rolling window, cut into fixed-width time buckets.

Usage is kept per bucket so that old usage can be dropped a bucket at a time with O(1) work.
Bucket ``b`` covers ``[b * width, (b + 1) * width)`` and stops counting once the whole bucket
has aged a full window, at ``(b + 1 + n) * width`` where ``n = window / width``. A token
recorded at ``r`` therefore counts at every ``t < r + window`` (never expires early) and is gone
by ``r + window + width`` (at most one bucket late). At any time ``t`` the live buckets are
``bucket_of(t) - n .. bucket_of(t)``: ``n + 1`` of them, which is the ring size of both stores.
"""

from __future__ import annotations

from dataclasses import dataclass

SECONDS_PER_DAY = 86_400
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1

DEFAULT_BUCKETS_PER_WINDOW = 120
"""The default bucket is 1/120 of the window (6 hours for 30 days).

Why 120: 121 live buckets keep a Redis hash in its compact listpack encoding (up to 128
fields by default: ~2 KiB per company instead of ~40 KiB for hourly buckets), the memory
store's ring stays under 1 KiB, and a token expires at most 0.83 % of the window late.
"""


class ConfigError(ValueError):
    """A configuration value is out of range; raised at start-up, never on a request."""


@dataclass(frozen=True, slots=True)
class Window:
    days: int = 30
    bucket_seconds: int = 0  # 0 = the default, 1/120 of the window

    def __post_init__(self) -> None:
        if isinstance(self.days, bool) or not isinstance(self.days, int):
            raise ConfigError("budget.window_days: must be a whole number of days")
        if not 1 <= self.days <= 3650:
            raise ConfigError("budget.window_days: must be between 1 and 3650")
        if self.bucket_seconds == 0:
            object.__setattr__(self, "bucket_seconds", self.seconds // DEFAULT_BUCKETS_PER_WINDOW)
        width = self.bucket_seconds
        if isinstance(width, bool) or not isinstance(width, int):
            raise ConfigError("budget.bucket_seconds: must be a whole number of seconds")
        if width < 1 or width > self.seconds or self.seconds % width:
            raise ConfigError(
                "budget.bucket_seconds: must divide the window "
                f"({self.seconds} s) evenly and be at least 1 second"
            )
        if self.seconds // width > 100_000:
            raise ConfigError("budget.bucket_seconds: too small (more than 100000 buckets)")

    @property
    def seconds(self) -> int:
        return self.days * SECONDS_PER_DAY

    @property
    def buckets(self) -> int:
        """``n``: how many whole buckets make one window (the ring holds ``n + 1``)."""
        return self.seconds // self.bucket_seconds

    def bucket_of(self, t: float) -> int:
        return int(t // self.bucket_seconds)

    def expiry_of(self, bucket: int) -> float:
        """When the tokens of ``bucket`` stop counting."""
        return float((bucket + 1 + self.buckets) * self.bucket_seconds)

    def frees_at(self, used: int, limit: int, head: int, slots: list[int]) -> float | None:
        """When usage next falls below ``limit`` if nothing more is recorded.

        ``slots[i]`` holds bucket ``head - n + i`` (oldest first). ``None`` means within budget
        now; ``inf`` means never (a limit of 0). Linear in the ring size, so it is only asked
        for when a company is over budget (the answer feeds ``Retry-After``).
        """
        if used < limit:
            return None
        oldest = head - self.buckets
        remaining = used
        for i, tokens in enumerate(slots):
            remaining -= tokens
            if remaining < limit:
                return self.expiry_of(oldest + i)
        return float("inf")
