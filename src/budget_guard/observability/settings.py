"""The ``[observability]`` table: metrics, their labels, and the log format.

Checked when the app is built, so a typo fails at start-up with a
:class:`~budget_guard.budget.window.ConfigError` naming the key, never on a request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from budget_guard.budget.window import ConfigError
from budget_guard.config_tables import declare_table, reject_unknown

_KNOWN = frozenset({"metrics", "metrics_path", "company_labels", "json_logs"})
declare_table("observability", _KNOWN)


@dataclass(frozen=True)
class ObservabilitySettings:
    metrics: bool = True
    """Serve Prometheus metrics at :attr:`metrics_path`."""
    metrics_path: str = "/metrics"
    company_labels: bool = False
    """Label per-company series with the company id. Off by default: every company becomes a
    time series of its own, which a Prometheus server with many tenants pays for."""
    json_logs: bool = True
    """``budget-guard serve`` writes one JSON object per log line (uvicorn's lines too)."""

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> ObservabilitySettings:
        if not isinstance(table, Mapping):
            raise ConfigError("[observability]: must be a table")
        reject_unknown("observability", table, _KNOWN)
        for key in ("metrics", "company_labels", "json_logs"):
            if key in table and not isinstance(table[key], bool):
                raise ConfigError(f"observability.{key}: must be true or false")
        path = table.get("metrics_path", cls.metrics_path)
        if not isinstance(path, str) or not path.startswith("/") or len(path) < 2:
            raise ConfigError('observability.metrics_path: must be a path such as "/metrics"')
        return cls(
            metrics=table.get("metrics", cls.metrics),
            metrics_path=path,
            company_labels=table.get("company_labels", cls.company_labels),
            json_logs=table.get("json_logs", cls.json_logs),
        )
