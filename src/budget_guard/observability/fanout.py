"""Several observers behind the one ``events=`` parameter the middleware takes."""

from __future__ import annotations

from collections.abc import Callable
from uuid import UUID

from budget_guard.events import GuardEvents


def _overridden(observers: tuple[GuardEvents, ...], name: str) -> tuple[Callable[..., None], ...]:
    """The observers' ``name`` hooks that do something (not ``GuardEvents``' no-op)."""
    default = getattr(GuardEvents, name)
    return tuple(
        getattr(observer, name)
        for observer in observers
        if getattr(type(observer), name) is not default
    )


class FanOutEvents(GuardEvents):
    """Calls each observer in turn (metrics and logs, say). Each hook calls only the
    observers that override it: a request's three events would otherwise also call the log
    observer's three no-ops."""

    def __init__(self, *observers: GuardEvents) -> None:
        self.observers = observers
        self._admitted = _overridden(observers, "admitted")
        self._rejected = _overridden(observers, "rejected")
        self._recorded = _overridden(observers, "recorded")
        self._journaled = _overridden(observers, "journaled")
        self._store_failed = _overridden(observers, "store_failed")
        self._upstream_answered = _overridden(observers, "upstream_answered")

    def admitted(self, company_id: UUID) -> None:
        for call in self._admitted:
            call(company_id)

    def rejected(self, company_id: UUID | None, reason: str) -> None:
        for call in self._rejected:
            call(company_id, reason)

    def recorded(self, company_id: UUID, tokens: int, source: str) -> None:
        for call in self._recorded:
            call(company_id, tokens, source)

    def journaled(self, company_id: UUID, tokens: int) -> None:
        for call in self._journaled:
            call(company_id, tokens)

    def store_failed(self, operation: str) -> None:
        for call in self._store_failed:
            call(operation)

    def upstream_answered(self, status: int, seconds: float) -> None:
        for call in self._upstream_answered:
            call(status, seconds)

    def watch_journal(self, journal: object) -> None:
        """Hands the middleware's fail-open journal to every observer that reports on it."""
        for observer in self.observers:
            watch = getattr(observer, "watch_journal", None)
            if watch is not None:
                watch(journal)
