"""What one company's budget looks like at one moment: everything the response DTO needs."""

from __future__ import annotations

from dataclasses import dataclass, replace
from uuid import UUID


@dataclass(frozen=True, slots=True)
class UsageSnapshot:
    company_id: UUID
    tokens_used: int
    """Tokens recorded within the rolling window (Int64 on the wire)."""
    token_limit: int
    window_days: int
    tokens_reserved: int = 0
    """Held by strict-mode reservations that are not settled yet; not part of ``tokens_used``."""
    frees_at: float | None = None
    """Epoch seconds when usage falls back below the limit if nothing more is recorded;
    ``None`` while within budget, ``inf`` when it never will (a limit of 0)."""

    @property
    def tokens_remaining(self) -> int:
        return max(0, self.token_limit - self.tokens_used)

    @property
    def is_within_budget(self) -> bool:
        return self.tokens_used < self.token_limit

    def as_first_answer(self, tokens_used: int, token_limit: int) -> UsageSnapshot:
        """What a replayed (deduplicated) call answers: the first call's numbers, with the
        current reservations and release time."""
        return replace(
            self,
            tokens_used=tokens_used,
            token_limit=token_limit,
            frees_at=None if tokens_used < token_limit else self.frees_at,
        )

    def retry_after(self, now: float) -> float | None:
        """Seconds until the window frees enough to be within budget again (``None``: now)."""
        if self.frees_at is None:
            return None
        return max(0.0, self.frees_at - now)
