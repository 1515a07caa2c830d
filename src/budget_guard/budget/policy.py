"""Who may spend how much: the window, the default limit and per-company limits.

Per-company limits come from the config file or from an async provider the host application
plugs in (its own database, say). Provider answers are cached (TTL, bounded) with cachetools
so the request path does not call the provider on every request.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from uuid import UUID

from cachetools import TTLCache

from budget_guard.budget.clock import Clock, system_clock
from budget_guard.budget.window import INT32_MAX, ConfigError, Window
from budget_guard.failure import describe
from budget_guard.stores.base import StoreUnavailable

log = logging.getLogger("budget_guard.policy")

LimitProvider = Callable[[UUID], Awaitable[int | None]]
"""Returns the company's limit, or ``None`` to use the default."""


class LimitUnavailable(StoreUnavailable):
    """The host's limit provider failed (its database is down, say). It is handled as the
    store being down: fail-open serves and journals the usage for replay, fail-closed and the
    usage endpoint answer 503. Usage is never lost to it and no request becomes a 500."""


def check_limit(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where}: must be a whole number of tokens")
    if not 0 <= value <= INT32_MAX:
        raise ConfigError(f"{where}: must be between 0 and {INT32_MAX} (Int32 on the wire)")
    return value


class BudgetPolicy:
    def __init__(
        self,
        window: Window | None = None,
        *,
        default_token_limit: int = 1_000_000,
        limits: Mapping[UUID, int] | None = None,
        provider: LimitProvider | None = None,
        provider_cache_ttl: float = 60.0,
        provider_cache_size: int = 100_000,
        clock: Clock = system_clock,
    ) -> None:
        self.window = window or Window()
        self.default_token_limit = check_limit(default_token_limit, "budget.default_token_limit")
        self.limits = {
            company: check_limit(limit, f'budget.limits."{company}"')
            for company, limit in (limits or {}).items()
        }
        self._provider = provider
        self._cache: TTLCache[UUID, int] = TTLCache(
            maxsize=provider_cache_size, ttl=provider_cache_ttl, timer=clock
        )

    def source_of(self, company_id: UUID) -> str:
        """Where :meth:`limit_for` takes this company's limit from (``config``, ``provider``
        or ``default``); a provider that answered ``None`` still reads as ``provider``."""
        if company_id in self.limits:
            return "config"
        return "provider" if self._provider is not None else "default"

    async def limit_for(self, company_id: UUID) -> int:
        limit = self.limits.get(company_id)
        if limit is not None:
            return limit
        if self._provider is None:
            return self.default_token_limit
        cached = self._cache.get(company_id)
        if cached is not None:
            return cached
        try:
            value = await self._provider(company_id)
        except Exception as error:
            raise LimitUnavailable(f"limit provider failed: {describe(error)}") from None
        if value is None:
            limit = self.default_token_limit
        else:
            try:
                limit = check_limit(value, "limit provider")
            except ConfigError:
                log.error("limit provider returned an invalid limit; using the default")
                limit = self.default_token_limit
        self._cache[company_id] = limit
        return limit
