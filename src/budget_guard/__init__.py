"""budget-guard: a hard, per-company rolling-window token budget for AI chat backends.

The parts, from the bottom up: a :class:`Window` and a :class:`BudgetPolicy` say who may
spend how much; a usage store (:class:`MemoryStore`, :class:`RedisStore`) keeps the numbers;
a :class:`Ledger` joins the two. :class:`BudgetGuardMiddleware` enforces the budget on the
proxy path and serves the usage endpoint (:class:`UsageEndpoint`); :class:`UpstreamProxy`
forwards to an OpenAI-compatible upstream; :func:`build_app` assembles all of it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from budget_guard.auth import (
    ApiKey,
    ApiKeyAuthenticator,
    Authenticator,
    CallableAuthenticator,
    ChainAuthenticator,
    Identity,
    JwtAuthenticator,
    Role,
)
from budget_guard.budget import (
    BudgetPolicy,
    ConfigError,
    Ledger,
    LimitUnavailable,
    ManualClock,
    UsageSnapshot,
    Window,
)
from budget_guard.config import Settings, load_settings
from budget_guard.counting import TokenCounter, TokenUsage
from budget_guard.events import GuardEvents
from budget_guard.guard import BudgetGuardMiddleware, GuardSettings
from budget_guard.proxy import UpstreamProxy
from budget_guard.stores import (
    Dedupe,
    MemoryStore,
    StoreError,
    StoreUnavailable,
    UsageStore,
    open_store,
)

if TYPE_CHECKING:
    from budget_guard.app import build_app
    from budget_guard.endpoint import EndpointSettings, UsageEndpoint
    from budget_guard.stores.redis import RedisStore

__version__ = "0.1.0"

__all__ = [
    "ApiKey",
    "ApiKeyAuthenticator",
    "Authenticator",
    "BudgetGuardMiddleware",
    "BudgetPolicy",
    "CallableAuthenticator",
    "ChainAuthenticator",
    "ConfigError",
    "Dedupe",
    "EndpointSettings",
    "GuardEvents",
    "GuardSettings",
    "Identity",
    "JwtAuthenticator",
    "Ledger",
    "LimitUnavailable",
    "ManualClock",
    "MemoryStore",
    "RedisStore",
    "Role",
    "Settings",
    "StoreError",
    "StoreUnavailable",
    "TokenCounter",
    "TokenUsage",
    "UpstreamProxy",
    "UsageEndpoint",
    "UsageSnapshot",
    "UsageStore",
    "Window",
    "build_app",
    "load_settings",
    "open_store",
]

_LAZY = {
    "RedisStore": "budget_guard.stores.redis",
    "UsageEndpoint": "budget_guard.endpoint",
    "EndpointSettings": "budget_guard.endpoint",
    "build_app": "budget_guard.app",
}


def __getattr__(name: str) -> Any:
    """Import the heavier parts (redis-py, the assembled app) only when asked for."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'budget_guard' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
