"""Every table of a config, built and checked before anything listens.

``budget-guard serve`` used to print its banner and then fail on a bad API key entry, or
with a traceback on a bad upstream URL, because each table was only built when the app was.
:func:`check_config` builds them all up front, so every mistake is one
:class:`~budget_guard.budget.window.ConfigError` line before the banner; ``budget-guard check``
runs the same checks and prints :func:`effective_toml`, the configuration as the server would
run it (defaults filled in, secrets masked).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

from budget_guard.alerts import AlertSettings
from budget_guard.app import serve_endpoint_settings
from budget_guard.auth import Authenticator, authenticator_from_config
from budget_guard.config import Settings
from budget_guard.endpoint import EndpointSettings
from budget_guard.guard import GuardSettings
from budget_guard.observability import ObservabilitySettings
from budget_guard.observability.logs import MASK, redact_config, secrets_in
from budget_guard.proxy.settings import ProxySettings
from budget_guard.server.settings import ServerSettings


@dataclass(frozen=True)
class CheckedConfig:
    settings: Settings
    server: ServerSettings
    proxy: ProxySettings
    guard: GuardSettings
    endpoint: EndpointSettings
    observability: ObservabilitySettings
    alerts: AlertSettings
    authenticator: Authenticator | None
    """None: the file has no ``[auth]``, so the server runs with a printed demo key."""


def check_config(settings: Settings) -> CheckedConfig:
    """Build every table's settings (and the authenticator), raising on the first mistake."""
    authenticator = None
    if "auth" in settings.raw:
        base = Path(settings.source).parent if settings.source else None
        authenticator = authenticator_from_config(settings.table("auth"), base_dir=base)
    return CheckedConfig(
        settings=settings,
        server=ServerSettings.from_table(settings.table("server")),
        proxy=ProxySettings.from_table(settings.table("proxy")),
        guard=GuardSettings.from_table(settings.table("guard")),
        endpoint=serve_endpoint_settings(settings),
        observability=ObservabilitySettings.from_table(settings.table("observability")),
        alerts=AlertSettings.from_table(settings.table("alerts")),
        authenticator=authenticator,
    )


def effective_tables(checked: CheckedConfig) -> dict[str, Any]:
    """Every table with the values the server runs with, secrets masked."""
    settings = checked.settings
    budget = settings.budget
    tables: dict[str, Any] = {
        "budget": {
            "window_days": budget.window.days,
            "bucket_seconds": budget.window.bucket_seconds,
            "default_token_limit": budget.default_token_limit,
            "provider_cache_ttl_seconds": budget.provider_cache_ttl_seconds,
            "limits": {str(company): limit for company, limit in budget.limits.items()},
        },
        "store": _fields(settings.store),
        "server": _fields(checked.server),
        "proxy": _fields(checked.proxy),
        "guard": _fields(checked.guard)
        | {"routes": [_route(route) for route in checked.guard.routes]},
        "endpoint": _fields(checked.endpoint),
        "observability": _fields(checked.observability),
    }
    if checked.alerts.enabled:
        tables["alerts"] = _fields(checked.alerts)
    if "auth" in settings.raw:
        tables["auth"] = dict(settings.table("auth"))
    return redact_config(tables, secrets_in(settings))


def effective_toml(checked: CheckedConfig) -> str:
    """:func:`effective_tables` as TOML: it loads back as a config (secrets aside)."""
    lines: list[str] = []
    for name, table in effective_tables(checked).items():
        _table(lines, name, table)
    return "\n".join(lines).strip() + "\n"


def _fields(settings: Any) -> dict[str, Any]:
    """A settings dataclass as plain values; fields kept out of ``repr`` are secrets."""
    values: dict[str, Any] = {}
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        if not field.repr and value:
            value = {k: MASK for k in value} if isinstance(value, Mapping) else MASK
        values[field.name] = _plain(value)
    return values


def _route(route: Any) -> dict[str, Any]:
    """A ``[[guard.routes]]`` entry as written (its derived fields left out)."""
    return {
        "method": route.method,
        "path": route.path,
        "charge": route.charge,
        "tokens": route.tokens,
        "creates": route.creates,
    }


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return _plain(value.value)
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _table(lines: list[str], name: str, table: Mapping[str, Any]) -> None:
    scalars = {k: v for k, v in table.items() if not _is_table(v) and not _is_table_array(v)}
    lines.append(f"[{name}]")
    for key, value in scalars.items():
        if value is None:
            lines.append(f"# {key}: not set")
        else:
            lines.append(f"{_key(key)} = {_value(value)}")
    lines.append("")
    for key, value in table.items():
        if _is_table(value):
            _table(lines, f"{name}.{_key(key)}", value)
        elif _is_table_array(value):
            for entry in value:
                lines.append(f"[[{name}.{_key(key)}]]")
                for k, v in entry.items():
                    if v is not None:
                        lines.append(f"{_key(k)} = {_value(v)}")
                lines.append("")


def _is_table(value: Any) -> bool:
    return isinstance(value, Mapping)


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, Mapping) for v in value)


def _key(key: str) -> str:
    bare = key.replace("_", "").replace("-", "").isalnum() and key.isascii()
    return key if bare else _string(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    return _string(str(value))


def _string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in escaped) + '"'
