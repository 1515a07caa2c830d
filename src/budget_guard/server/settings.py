"""The ``[server]`` table: where ``budget-guard serve`` listens and how it bounds connections.

uvicorn on its own never times out a connection that has not sent a complete request head
(only the gap *after* a response is bounded), and it accepts connections until the process
runs out of file descriptors. These settings are the bounds
:mod:`budget_guard.server.connections` enforces instead; see there for how.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from budget_guard.budget.window import ConfigError
from budget_guard.config_tables import declare_table, reject_unknown

_KNOWN = {
    "host",
    "port",
    "header_timeout_seconds",
    "keep_alive_seconds",
    "max_connections",
    "http",
}
declare_table("server", _KNOWN)

MIN_CONNECTIONS = 16
"""The fewest connections a worker is ever bounded to, however low the descriptor limit."""


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    header_timeout_seconds: float = 10.0
    """The longest a connection may take to deliver a complete request head: from the
    connect for a new connection (one that sends nothing is closed too), from the end of the
    previous response on a kept-alive one. Long enough for a slow mobile client's first
    request, short enough that idle or trickled sockets cannot pile up. Request bodies have
    their own deadline (``guard.body_timeout_seconds``) and responses none: a streamed LLM
    answer may take minutes."""
    keep_alive_seconds: float = 5.0
    """How long a kept-alive connection may sit idle after a response before it is closed
    (uvicorn's ``timeout_keep_alive``, whose default this keeps)."""
    max_connections: int = 2048
    """Open client connections per worker. At the bound a new connection first displaces the
    connection that has waited longest for a request head; only when every connection is busy
    with a request is it refused with a 503. Lowered at start to what the worker's file
    descriptor limit leaves room for."""
    http: str = "httptools"
    """uvicorn's HTTP/1.1 parser: ``"httptools"`` (llhttp, the parser Node.js uses; about
    twice h11's requests per second) or ``"h11"`` (pure Python, strictest)."""

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> ServerSettings:
        reject_unknown("server", table, _KNOWN)
        defaults = cls()
        host = table.get("host", defaults.host)
        if not isinstance(host, str) or not host:
            raise ConfigError("server.host: must be an address such as 127.0.0.1")
        port = table.get("port", defaults.port)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ConfigError("server.port: must be a whole number from 0 to 65535")
        connections = table.get("max_connections", defaults.max_connections)
        if (
            isinstance(connections, bool)
            or not isinstance(connections, int)
            or connections < MIN_CONNECTIONS
        ):
            raise ConfigError(
                f"server.max_connections: must be a whole number >= {MIN_CONNECTIONS}"
            )
        http = table.get("http", defaults.http)
        if http not in {"httptools", "h11"}:
            raise ConfigError('server.http: must be "httptools" or "h11"')
        return cls(
            host=host,
            port=port,
            header_timeout_seconds=_seconds(
                table, "header_timeout_seconds", defaults.header_timeout_seconds
            ),
            keep_alive_seconds=_seconds(table, "keep_alive_seconds", defaults.keep_alive_seconds),
            max_connections=connections,
            http=http,
        )

    def connection_bound(self, descriptor_limit: int, reserved: int) -> int:
        """``max_connections``, lowered so that the client connections plus the ``reserved``
        descriptors the worker needs otherwise (upstream pool, store, logs) stay under
        ``descriptor_limit``: past it every ``accept()`` fails and asyncio logs each one."""
        return max(MIN_CONNECTIONS, min(self.max_connections, descriptor_limit - reserved))


def _seconds(table: Mapping[str, Any], key: str, default: float) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigError(f"server.{key}: must be a positive number of seconds")
    return float(value)
