"""The event a threshold crossing becomes, and its JSON payload."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import orjson

from budget_guard.budget.snapshot import UsageSnapshot

EVENT_TYPE = "budget.threshold_crossed"


def _iso(epoch: float | None) -> str | None:
    if epoch is None or not math.isfinite(epoch):
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class ThresholdCrossed:
    """One company crossing one threshold. ``event_id`` is unique per crossing (the store let
    exactly one process see it), so a receiver that gets a retried POST twice can dedupe."""

    event_id: str
    company_id: UUID
    threshold: float
    tokens_used: int
    token_limit: int
    window_days: int
    frees_at: float | None
    """When enough usage leaves the window to bring the company back under its limit (epoch
    seconds); ``None`` while it is still under the limit, ``inf`` when it never will."""
    occurred_at: float

    @classmethod
    def from_snapshot(
        cls, company_id: UUID, threshold: float, snap: UsageSnapshot, now: float
    ) -> ThresholdCrossed:
        return cls(
            event_id=f"evt_{uuid.uuid4().hex}",
            company_id=company_id,
            threshold=threshold,
            tokens_used=snap.tokens_used,
            token_limit=snap.token_limit,
            window_days=snap.window_days,
            frees_at=snap.frees_at,
            occurred_at=now,
        )

    def payload(self) -> dict[str, Any]:
        """camelCase like the usage endpoint's DTOs."""
        return {
            "id": self.event_id,
            "type": EVENT_TYPE,
            "companyId": self.company_id.hex,  # the usage API's Guid format
            "threshold": self.threshold,
            "tokensUsed": self.tokens_used,
            "tokenLimit": self.token_limit,
            "windowDays": self.window_days,
            "freesAt": _iso(self.frees_at),
            "occurredAt": _iso(self.occurred_at),
        }

    def body(self) -> bytes:
        return orjson.dumps(self.payload())
