"""The ``[alerts]`` table: thresholds, webhooks, their secret, and the delivery queue.

Checked when the settings are built, so a typo fails at start-up with a
:class:`~budget_guard.budget.window.ConfigError` naming the key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from budget_guard.budget.window import ConfigError
from budget_guard.config_tables import declare_table, reject_unknown
from budget_guard.stores.base import check_thresholds

DEFAULT_THRESHOLDS = (0.8, 0.95, 1.0)
_KNOWN_KEYS = frozenset(
    {
        "enabled",
        "thresholds",
        "webhooks",
        "secret",
        "secret_env",
        "queue_size",
        "max_attempts",
        "backoff_seconds",
        "timeout_seconds",
    }
)

declare_table("alerts", _KNOWN_KEYS)


@dataclass(frozen=True)
class AlertSettings:
    enabled: bool = False
    thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS
    webhooks: tuple[str, ...] = ()
    secret: str = ""
    queue_size: int = 10_000
    """Deliveries waiting (or waiting to retry) at once in this process; more are dropped,
    logged and counted (``budget_guard_alerts_dropped_total``)."""
    max_attempts: int = 20
    """Tries per delivery; with the backoff doubling up to a minute, about 15 minutes."""
    backoff_seconds: float = 0.5
    timeout_seconds: float = 5.0

    def __repr__(self) -> str:  # the secret never reaches a log line
        return (
            f"AlertSettings(enabled={self.enabled}, thresholds={self.thresholds}, "
            f"webhooks={len(self.webhooks)}, secret=***)"
        )

    @classmethod
    def from_table(
        cls, table: Mapping[str, Any], env: Mapping[str, str] | None = None
    ) -> AlertSettings:
        if not table:
            return cls()
        reject_unknown("alerts", table, _KNOWN_KEYS)
        env = os.environ if env is None else env
        enabled = table.get("enabled", True)
        if not isinstance(enabled, bool):
            raise ConfigError("alerts.enabled: must be true or false")
        raw = table.get("thresholds", list(DEFAULT_THRESHOLDS))
        if not isinstance(raw, list) or not raw:
            raise ConfigError("alerts.thresholds: must be a non-empty list such as [0.8, 1.0]")
        try:
            thresholds = check_thresholds(raw)
        except ValueError as error:
            raise ConfigError(f"alerts.thresholds: {error}") from None
        webhooks = table.get("webhooks", [])
        if not isinstance(webhooks, list) or not all(isinstance(u, str) for u in webhooks):
            raise ConfigError("alerts.webhooks: must be a list of URLs")
        for url in webhooks:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ConfigError("alerts.webhooks: each must be an http:// or https:// URL")
        secret = _secret(table, env)
        if webhooks and not secret:
            raise ConfigError(
                "alerts.secret: webhooks are signed; set alerts.secret or alerts.secret_env"
            )
        return cls(
            enabled=enabled,
            thresholds=thresholds,
            webhooks=tuple(webhooks),
            secret=secret,
            queue_size=_positive_int(table, "queue_size", cls.queue_size),
            max_attempts=_positive_int(table, "max_attempts", cls.max_attempts),
            backoff_seconds=_positive_number(table, "backoff_seconds", cls.backoff_seconds),
            timeout_seconds=_positive_number(table, "timeout_seconds", cls.timeout_seconds),
        )


def alert_thresholds(table: Mapping[str, Any]) -> tuple[float, ...]:
    """Only the thresholds of an ``[alerts]`` table (none when alerts are off), for views that
    show them and need no webhook secret (``budget-guard usage``)."""
    if not table or table.get("enabled", True) is False:
        return ()
    raw = table.get("thresholds", list(DEFAULT_THRESHOLDS))
    try:
        return check_thresholds(raw if isinstance(raw, list) else [raw])
    except ValueError as error:
        raise ConfigError(f"alerts.thresholds: {error}") from None


def _secret(table: Mapping[str, Any], env: Mapping[str, str]) -> str:
    if "secret" in table and "secret_env" in table:
        raise ConfigError("alerts.secret: give secret or secret_env, not both")
    if "secret_env" in table:
        name = table["secret_env"]
        if not isinstance(name, str) or not env.get(name):
            raise ConfigError("alerts.secret_env: must name a set environment variable")
        return env[name]
    secret = table.get("secret", "")
    if not isinstance(secret, str):
        raise ConfigError("alerts.secret: must be a string")
    return secret


def _positive_int(table: Mapping[str, Any], key: str, default: int) -> int:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"alerts.{key}: must be a positive whole number")
    return value


def _positive_number(table: Mapping[str, Any], key: str, default: float) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"alerts.{key}: must be a positive number")
    return float(value)
