"""Usage stores: one protocol, two backends (embedded memory and Redis)."""

from __future__ import annotations

from typing import Any

from budget_guard.clock import Clock, system_clock
from budget_guard.stores.base import (
    Dedupe,
    IdempotencyConflict,
    RecordResult,
    Reservation,
    StoreError,
    StoreFull,
    StoreUnavailable,
    UsageOverflow,
    UsageStore,
)
from budget_guard.stores.memory import MemoryStore
from budget_guard.window import ConfigError, Window

__all__ = [
    "Dedupe",
    "IdempotencyConflict",
    "MemoryStore",
    "RecordResult",
    "RedisStore",
    "Reservation",
    "StoreError",
    "StoreFull",
    "StoreUnavailable",
    "UsageOverflow",
    "UsageStore",
    "open_store",
]


def open_store(
    url: str, window: Window, *, clock: Clock = system_clock, **options: Any
) -> UsageStore:
    """``memory://`` for the embedded store; ``redis://``, ``rediss://``, ``unix://`` for Redis
    (``redis+cluster://`` or ``cluster=True`` for Redis Cluster)."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme == "memory":
        allowed = {"max_companies", "reservation_ttl", "max_idempotency_keys"}
        return MemoryStore(
            window, clock=clock, **{k: v for k, v in options.items() if k in allowed}
        )
    if scheme in {"redis", "rediss", "unix", "redis+cluster", "rediss+cluster"}:
        from budget_guard.stores.redis import RedisStore

        cluster = bool(options.pop("cluster", False)) or scheme.endswith("+cluster")
        options.pop("max_companies", None)
        options.pop("max_idempotency_keys", None)
        real_url = url.replace("+cluster://", "://", 1)
        return RedisStore.from_url(real_url, window, cluster=cluster, clock=clock, **options)
    raise ConfigError(
        f"store.url: unsupported scheme {scheme or url!r} "
        "(use memory://, redis://, rediss://, unix:// or redis+cluster://)"
    )


def __getattr__(name: str) -> Any:
    if name == "RedisStore":  # imported lazily: the embedded default never loads redis-py
        from budget_guard.stores.redis import RedisStore

        return RedisStore
    raise AttributeError(name)
