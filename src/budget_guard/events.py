"""What the guard tells the outside world about its work (metrics, logs).

The middleware and the endpoint call these hooks; the default does nothing, so the request
path pays nothing unless an operator plugs in an observer (Prometheus, say). Company ids are
passed so an observer *may* use them, but the shipped ones keep them out of metric labels
unless told otherwise (cardinality).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from uuid import UUID

if TYPE_CHECKING:
    from budget_guard.guard.journal import UsageJournal


class GuardEvents:
    """No-op observer; subclass and override what you want to see."""

    def admitted(self, company_id: UUID) -> None:
        """A guarded request was let through to the upstream."""

    def rejected(self, company_id: UUID | None, reason: str) -> None:
        """A guarded request was answered by the guard itself: ``reason`` is one of
        ``budget``, ``unauthenticated``, ``forbidden``, ``bad_request``, ``too_large``,
        ``store_unavailable``."""

    def recorded(self, company_id: UUID, tokens: int, source: str) -> None:
        """Tokens were written to the store; ``source`` is ``upstream``, ``counted`` or
        ``explicit`` (the usage endpoint)."""

    def journaled(self, company_id: UUID, tokens: int) -> None:
        """The store was down: the tokens wait in the fail-open journal."""

    def store_failed(self, operation: str) -> None:
        """A store operation failed (outage, full, overflow)."""

    def upstream_answered(self, status: int, seconds: float) -> None:
        """The upstream's response started: status and time to first byte."""

    def watch_journal(self, journal: UsageJournal) -> None:
        """The middleware's fail-open journal, for an observer that reports its depth."""


NO_EVENTS = GuardEvents()
