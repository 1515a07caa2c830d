"""Several observers behind the one ``events=`` parameter the middleware takes."""

from __future__ import annotations

from uuid import UUID

from budget_guard.events import GuardEvents


class FanOutEvents(GuardEvents):
    """Calls each observer in turn (metrics and logs, say)."""

    def __init__(self, *observers: GuardEvents) -> None:
        self.observers = observers

    def admitted(self, company_id: UUID) -> None:
        for observer in self.observers:
            observer.admitted(company_id)

    def rejected(self, company_id: UUID | None, reason: str) -> None:
        for observer in self.observers:
            observer.rejected(company_id, reason)

    def recorded(self, company_id: UUID, tokens: int, source: str) -> None:
        for observer in self.observers:
            observer.recorded(company_id, tokens, source)

    def journaled(self, company_id: UUID, tokens: int) -> None:
        for observer in self.observers:
            observer.journaled(company_id, tokens)

    def store_failed(self, operation: str) -> None:
        for observer in self.observers:
            observer.store_failed(operation)

    def upstream_answered(self, status: int, seconds: float) -> None:
        for observer in self.observers:
            observer.upstream_answered(status, seconds)

    def watch_journal(self, journal: object) -> None:
        """Hands the middleware's fail-open journal to every observer that reports on it."""
        for observer in self.observers:
            watch = getattr(observer, "watch_journal", None)
            if watch is not None:
                watch(journal)
