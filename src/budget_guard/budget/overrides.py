"""Run-time limit overrides as the request path reads them.

Overrides live in the usage store, so that every worker and host sees one value. On a remote
store (Redis) reading the override on every request would add a round trip to the hot path,
so each process keeps what it read for at most :data:`OVERRIDE_CACHE_SECONDS`: a change made
anywhere is in force everywhere within that time (the issue asks for one second). The
embedded store is read directly: it lives in this process, so there is nothing to cache.
"""

from __future__ import annotations

import asyncio
from uuid import UUID

from cachetools import TTLCache

from budget_guard.budget.clock import Clock, system_clock
from budget_guard.stores.base import LimitOverrides, UsageStore

OVERRIDE_CACHE_SECONDS = 0.5
"""Half the promised second, so that a read that was in flight during a change is also gone
in time."""

_NONE = -1  # cached "no override" (a stored limit is never negative)
MISS = -2
"""What :meth:`OverrideReader.known` answers when only :meth:`OverrideReader.get` can tell."""


class OverrideReader:
    """``await reader.get(company)``: the override in force, or ``None``."""

    def __init__(
        self,
        store: UsageStore,
        *,
        ttl: float = OVERRIDE_CACHE_SECONDS,
        max_companies: int = 100_000,
        clock: Clock = system_clock,
    ) -> None:
        inner = getattr(store, "inner", store)  # an instrumented store still has the methods
        self.supported = isinstance(inner, LimitOverrides)
        self._store = store
        # The embedded store's overrides are a dict in this process: read without an await
        # (the await alone was 12 % of a memory-store record, measured in bench_limits).
        peek = getattr(inner, "peek_limit_override", None)
        self._peek = peek if self.supported and not store.remote else None
        self._cache: TTLCache[UUID, int] | None = (
            TTLCache(maxsize=max_companies, ttl=ttl, timer=clock)
            if self.supported and store.remote and ttl > 0
            else None
        )
        self._reading: dict[UUID, asyncio.Future[int | None]] = {}

    def known(self, company_id: UUID) -> int | None:
        """The override when it can be told without a store call, else :data:`MISS`: the
        request path's fast way (no coroutine for a cache hit or the embedded store)."""
        if not self.supported:
            return None
        if self._peek is not None:
            return self._peek(company_id)  # type: ignore[no-any-return]
        cache = self._cache
        cached = cache.get(company_id) if cache is not None else None
        if cached is None:
            return MISS
        return None if cached == _NONE else cached

    async def get(self, company_id: UUID) -> int | None:
        if not self.supported:
            return None
        cache = self._cache
        if cache is None:
            return await self._store.limit_override(company_id)  # type: ignore[attr-defined, no-any-return]
        cached = cache.get(company_id)
        if cached is not None:
            return None if cached == _NONE else cached
        # One read per company in flight: a burst of a company's first requests waits for
        # it rather than queueing one round trip each on the store's connection pool.
        pending = self._reading.get(company_id)
        if pending is None:
            pending = asyncio.ensure_future(self._read(company_id))
            pending.add_done_callback(_retrieved)  # every waiter may have been cancelled
            self._reading[company_id] = pending
        return await asyncio.shield(pending)

    async def _read(self, company_id: UUID) -> int | None:
        try:
            value: int | None = await self._store.limit_override(company_id)  # type: ignore[attr-defined]
        finally:
            self._reading.pop(company_id, None)
        if self._cache is not None:
            self._cache[company_id] = _NONE if value is None else value
        return value

    def forget(self, company_id: UUID) -> None:
        """Drop this process's copy, so a change made here is in force here at once."""
        if self._cache is not None:
            self._cache.pop(company_id, None)


def _retrieved(read: asyncio.Future[int | None]) -> None:
    if not read.cancelled():
        read.exception()
