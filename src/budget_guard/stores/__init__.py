"""Usage stores: one protocol, two backends (embedded memory and Redis)."""

from __future__ import annotations

from typing import Any

from budget_guard.budget.clock import Clock, system_clock
from budget_guard.budget.window import ConfigError, Window
from budget_guard.stores.base import (
    DEFAULT_MAX_IDEMPOTENCY_KEYS_PER_COMPANY,
    MAX_OBJECT_ID_CHARS,
    Dedupe,
    IdempotencyConflict,
    IdempotencyKeysExhausted,
    RecordResult,
    Reservation,
    StoreError,
    StoreFull,
    StoreUnavailable,
    UsageOverflow,
    UsageStore,
)
from budget_guard.stores.memory import MemoryStore

__all__ = [
    "DEFAULT_MAX_IDEMPOTENCY_KEYS_PER_COMPANY",
    "MAX_OBJECT_ID_CHARS",
    "Dedupe",
    "IdempotencyConflict",
    "IdempotencyKeysExhausted",
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
    (``redis+cluster://`` or ``cluster=True`` for Redis Cluster).

    Options only one backend understands are dropped for the other: the memory store's
    bounds on process memory (``max_companies``, ``max_idempotency_keys``, ``max_objects``)
    mean nothing to Redis, whose memory is bounded by its own ``maxmemory``."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme == "memory":
        allowed = {
            "max_companies",
            "reservation_ttl",
            "max_idempotency_keys",
            "max_idempotency_keys_per_company",
            "max_objects",
        }
        return MemoryStore(
            window, clock=clock, **{k: v for k, v in options.items() if k in allowed}
        )
    if scheme in {"redis", "rediss", "unix", "redis+cluster", "rediss+cluster"}:
        from budget_guard.stores.redis import RedisStore

        cluster = bool(options.pop("cluster", False)) or scheme.endswith("+cluster")
        for memory_only in ("max_companies", "max_idempotency_keys", "max_objects"):
            options.pop(memory_only, None)
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
