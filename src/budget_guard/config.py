"""Configuration: one TOML file, a few environment overrides, checked at start-up.

Each feature reads its own table (``[auth]``, ``[guard]``, ``[proxy]``...) from
:attr:`Settings.raw`, so this module only knows the tables every deployment has: the budget
and the store. A bad value is a :class:`~budget_guard.budget.window.ConfigError` naming the key.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from budget_guard.budget.clock import Clock, system_clock
from budget_guard.budget.ledger import Ledger
from budget_guard.budget.policy import BudgetPolicy, LimitProvider, check_limit
from budget_guard.budget.weights import TYPES, BudgetWeights
from budget_guard.budget.window import ConfigError, Window
from budget_guard.config_tables import check_document, declare_table, reject_unknown
from budget_guard.stores import DEFAULT_MAX_IDEMPOTENCY_KEYS_PER_COMPANY, UsageStore, open_store
from budget_guard.stores.memory import DEFAULT_MAX_IDEMPOTENCY_KEYS, DEFAULT_MAX_OBJECTS

CONFIG_ENV = "BUDGET_GUARD_CONFIG"

ENV_OVERRIDES: dict[str, tuple[str, str, type]] = {
    "BUDGET_GUARD_STORE_URL": ("store", "url", str),
    "BUDGET_GUARD_WINDOW_DAYS": ("budget", "window_days", int),
    "BUDGET_GUARD_DEFAULT_TOKEN_LIMIT": ("budget", "default_token_limit", int),
    "BUDGET_GUARD_UPSTREAM_URL": ("proxy", "upstream_url", str),
    "BUDGET_GUARD_UPSTREAM_API_KEY": ("proxy", "upstream_api_key", str),
    "BUDGET_GUARD_STRICT": ("guard", "strict", bool),
    "BUDGET_GUARD_ON_STORE_ERROR": ("guard", "on_store_error", str),
}
"""Environment variable -> (table, key, type). An override wins over the file."""


BUDGET_KEYS = (
    "window_days",
    "default_token_limit",
    "limits",
    "bucket_seconds",
    "provider_cache_ttl_seconds",
    "weights",
    "model_weights",
)
STORE_KEYS = (
    "url",
    "prefix",
    "cluster",
    "reservation_ttl_seconds",
    "max_companies",
    "socket_timeout_seconds",
    "max_idempotency_keys_per_company",
    "max_idempotency_keys",
    "max_objects",
)
declare_table("budget", BUDGET_KEYS)
declare_table("budget.limits", open=True)  # company Guid = limit: checked below
declare_table("budget.weights", TYPES)
declare_table("budget.model_weights", open=True)  # model pattern = weight: checked in weights
declare_table("store", STORE_KEYS)


@dataclass(frozen=True)
class StoreSettings:
    url: str = "memory://"
    prefix: str = "budget-guard:"
    cluster: bool = False
    reservation_ttl_seconds: float = 300.0
    max_companies: int = 1_000_000
    socket_timeout_seconds: float = 2.0
    max_idempotency_keys_per_company: int = DEFAULT_MAX_IDEMPOTENCY_KEYS_PER_COMPANY
    """Live ``Idempotency-Key`` values one company may hold (both stores)."""
    max_idempotency_keys: int = DEFAULT_MAX_IDEMPOTENCY_KEYS
    """Live idempotency keys of all companies together (memory store: its memory bound)."""
    max_objects: int = DEFAULT_MAX_OBJECTS
    """Upstream object owners remembered (memory store; least recently used go first)."""

    def open(self, window: Window, *, clock: Clock = system_clock) -> UsageStore:
        options: dict[str, Any] = {
            "reservation_ttl": self.reservation_ttl_seconds,
            "max_companies": self.max_companies,
            "max_idempotency_keys_per_company": self.max_idempotency_keys_per_company,
            "max_idempotency_keys": self.max_idempotency_keys,
            "max_objects": self.max_objects,
        }
        if not self.url.startswith("memory"):
            options.update(
                prefix=self.prefix,
                cluster=self.cluster,
                socket_timeout=self.socket_timeout_seconds,
            )
        return open_store(self.url, window, clock=clock, **options)


@dataclass(frozen=True)
class BudgetSettings:
    window: Window = field(default_factory=Window)
    default_token_limit: int = 1_000_000
    limits: Mapping[UUID, int] = field(default_factory=dict)
    provider_cache_ttl_seconds: float = 60.0
    weights: BudgetWeights = field(default_factory=BudgetWeights)
    """``[budget.weights]`` and ``[budget.model_weights]`` (see ``budget/weights.py``); raw tokens
    when neither is set."""

    def policy(
        self, *, provider: LimitProvider | None = None, clock: Clock = system_clock
    ) -> BudgetPolicy:
        return BudgetPolicy(
            self.window,
            default_token_limit=self.default_token_limit,
            limits=self.limits,
            provider=provider,
            provider_cache_ttl=self.provider_cache_ttl_seconds,
            clock=clock,
        )


@dataclass(frozen=True)
class Settings:
    budget: BudgetSettings = field(default_factory=BudgetSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    raw: Mapping[str, Any] = field(default_factory=dict)
    """The whole parsed file (after environment overrides), for the tables features own."""
    source: str | None = None

    def table(self, name: str) -> Mapping[str, Any]:
        value = self.raw.get(name, {})
        if not isinstance(value, Mapping):
            raise ConfigError(f"[{name}]: must be a table")
        return value

    def ledger(
        self, *, provider: LimitProvider | None = None, clock: Clock = system_clock
    ) -> Ledger:
        store = self.store.open(self.budget.window, clock=clock)
        return Ledger(
            store, self.budget.policy(provider=provider, clock=clock), weights=self.budget.weights
        )


def load_settings(
    path: str | os.PathLike[str] | None = None, *, env: Mapping[str, str] | None = None
) -> Settings:
    """Read the file (``path``, else ``$BUDGET_GUARD_CONFIG``, else built-in defaults)."""
    env = os.environ if env is None else env
    chosen = path if path is not None else env.get(CONFIG_ENV) or None
    data: dict[str, Any] = {}
    if chosen is not None:
        try:
            data = tomllib.loads(Path(chosen).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file not found: {chosen}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{chosen}: not valid TOML ({exc})") from None
    return settings_from_mapping(_apply_env(data, env), source=str(chosen) if chosen else None)


def _apply_env(data: dict[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    for var, (table, key, kind) in ENV_OVERRIDES.items():
        if var not in env:
            continue
        text = env[var]
        value: Any = text
        if kind is int:
            try:
                value = int(text)
            except ValueError:
                raise ConfigError(f"{var}: must be a whole number") from None
        elif kind is bool:
            value = text.strip().lower() in {"1", "true", "yes", "on"}
        data.setdefault(table, {})[key] = value
    return data


STORE_SCHEMES = ("memory", "redis", "rediss", "unix", "redis+cluster", "rediss+cluster")


def check_store_url(url: object) -> str:
    """The store URL, checked in full now rather than by the first request that uses it."""
    example = "must be a URL such as memory:// or redis://host:6379/0"
    if not isinstance(url, str) or "://" not in url:
        raise ConfigError(f"store.url: {example}")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in STORE_SCHEMES:
        raise ConfigError(
            f"store.url: unsupported scheme {scheme!r} (use memory://, redis://, rediss://, "
            "unix:// or redis+cluster://)"
        )
    if scheme == "memory":
        if url.rstrip("/").lower() != "memory:":
            raise ConfigError("store.url: the memory store takes no host or options: memory://")
        return url
    if scheme == "unix":
        if not parts.path:
            raise ConfigError("store.url: a unix:// URL names the socket: unix:///run/redis.sock")
        return url
    try:
        port = parts.port
    except ValueError:
        raise ConfigError(
            f"store.url: the port must be a number from 1 to 65535 ({example})"
        ) from None
    if not parts.hostname:
        raise ConfigError(f"store.url: no host ({example})")
    database = parts.path.lstrip("/")
    if database and not (database.isdigit() and not scheme.endswith("+cluster")):
        raise ConfigError(
            f"store.url: the path is the database number: /0 to /15, not /{database}"
            + (
                " (Redis Cluster has database 0 only: leave the path out)"
                if "cluster" in scheme
                else ""
            )
        )
    del port
    return url


def _number(table: Mapping[str, Any], key: str, where: str, default: float) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"{where}.{key}: must be a non-negative number")
    return float(value)


def _count(table: Mapping[str, Any], key: str, where: str, default: int) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{where}.{key}: must be a positive whole number")
    return value


def settings_from_mapping(data: Mapping[str, Any], *, source: str | None = None) -> Settings:
    """Check every table and key of ``data``, then build the budget and store settings (each
    feature's table is built, and checked in full, by its own settings module)."""
    check_document(data)
    budget_t = data.get("budget", {})
    store_t = data.get("store", {})
    if not isinstance(budget_t, Mapping) or not isinstance(store_t, Mapping):
        raise ConfigError("[budget] and [store] must be tables")
    reject_unknown("budget", budget_t, BUDGET_KEYS)
    window = Window(budget_t.get("window_days", 30), budget_t.get("bucket_seconds", 0))
    limits_t = budget_t.get("limits", {})
    if not isinstance(limits_t, Mapping):
        raise ConfigError("budget.limits: must be a table of company Guid = limit")
    limits: dict[UUID, int] = {}
    for company, limit in limits_t.items():
        try:
            company_id = UUID(company)
        except ValueError:
            raise ConfigError(f'budget.limits."{company}": not a company Guid') from None
        limits[company_id] = check_limit(limit, f'budget.limits."{company}"')
    budget = BudgetSettings(
        window=window,
        default_token_limit=check_limit(
            budget_t.get("default_token_limit", 1_000_000), "budget.default_token_limit"
        ),
        limits=limits,
        provider_cache_ttl_seconds=_number(budget_t, "provider_cache_ttl_seconds", "budget", 60),
        weights=BudgetWeights.from_tables(budget_t.get("weights"), budget_t.get("model_weights")),
    )
    reject_unknown("store", store_t, STORE_KEYS)
    url = check_store_url(store_t.get("url", "memory://"))
    max_companies = _count(store_t, "max_companies", "store", 1_000_000)
    keys_per_company = _count(
        store_t,
        "max_idempotency_keys_per_company",
        "store",
        DEFAULT_MAX_IDEMPOTENCY_KEYS_PER_COMPANY,
    )
    max_keys = _count(store_t, "max_idempotency_keys", "store", DEFAULT_MAX_IDEMPOTENCY_KEYS)
    if url.startswith("memory") and keys_per_company >= max_keys:
        # Else one company could fill the whole table and every other company's keyed
        # record would answer 503: the per-company bound would protect no one.
        raise ConfigError(
            "store.max_idempotency_keys_per_company: must be below store.max_idempotency_keys"
            f" ({max_keys}) on the memory store"
        )
    store = StoreSettings(
        url=url,
        prefix=str(store_t.get("prefix", "budget-guard:")),
        cluster=bool(store_t.get("cluster", False)),
        reservation_ttl_seconds=_number(store_t, "reservation_ttl_seconds", "store", 300),
        max_companies=max_companies,
        socket_timeout_seconds=_number(store_t, "socket_timeout_seconds", "store", 2.0),
        max_idempotency_keys_per_company=keys_per_company,
        max_idempotency_keys=max_keys,
        max_objects=_count(store_t, "max_objects", "store", DEFAULT_MAX_OBJECTS),
    )
    return Settings(budget=budget, store=store, raw=dict(data), source=source)
