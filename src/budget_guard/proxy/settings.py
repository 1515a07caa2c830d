"""The ``[proxy]`` table: where the guarded proxy forwards, and with which key."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from budget_guard.budget.window import ConfigError
from budget_guard.config_tables import declare_table, reject_unknown
from budget_guard.proxy.upstream import (
    DEFAULT_FORWARDED_HEADERS,
    UpstreamProxy,
    check_headers,
    check_upstream_url,
)

_KNOWN = {
    "upstream_url",
    "upstream_api_key",
    "upstream_api_key_env",
    "auth_style",
    "transport",
    "timeout_seconds",
    "connect_timeout_seconds",
    "max_connections",
    "strip_prefix",
    "forward_headers",
    "upstream_headers",
}
declare_table("proxy", _KNOWN)
declare_table("proxy.upstream_headers", open=True)  # "Name" = "value": checked below


@dataclass(frozen=True)
class ProxySettings:
    upstream_url: str | None = None
    """Base URL without ``/v1`` (the request path is appended as is). None: the demo."""
    upstream_api_key: str | None = field(default=None, repr=False)
    auth_style: str = "bearer"
    transport: str = "aiohttp"
    timeout_seconds: float = 600.0
    connect_timeout_seconds: float = 10.0
    max_connections: int = 100
    strip_prefix: str | None = None
    """Dropped from the incoming path before it is appended (``"/v1"`` for an upstream whose
    OpenAI base is ``.../v1beta/openai``, say)."""
    forward_headers: tuple[str, ...] = DEFAULT_FORWARDED_HEADERS
    """The client request headers the upstream receives (a trailing ``*``: a prefix)."""
    upstream_headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    """Headers the operator sends on every upstream request: ``OpenAI-Organization`` and
    ``OpenAI-Project`` come only from here, never from a client."""

    @classmethod
    def from_table(
        cls, table: Mapping[str, Any], env: Mapping[str, str] | None = None
    ) -> ProxySettings:
        env = os.environ if env is None else env
        reject_unknown("proxy", table, _KNOWN)
        url = table.get("upstream_url")
        if url is not None and (
            not isinstance(url, str) or not url.startswith(("http://", "https://"))
        ):
            raise ConfigError("proxy.upstream_url: must be an http:// or https:// URL")
        key = table.get("upstream_api_key")
        key_env = table.get("upstream_api_key_env")
        if key is not None and not isinstance(key, str):
            raise ConfigError("proxy.upstream_api_key: must be a string")
        if key is None and key_env is not None:
            if not isinstance(key_env, str) or key_env not in env:
                raise ConfigError(
                    f"proxy.upstream_api_key_env: the environment variable {key_env!r} is not set"
                )
            key = env[key_env]
        style = table.get("auth_style", "bearer")
        if style not in {"bearer", "x-api-key"}:
            raise ConfigError('proxy.auth_style: must be "bearer" or "x-api-key"')
        transport = table.get("transport", "aiohttp")
        if transport not in {"aiohttp", "httpx"}:
            raise ConfigError('proxy.transport: must be "aiohttp" or "httpx"')
        timeouts = {}
        for name, default in (("timeout_seconds", 600.0), ("connect_timeout_seconds", 10.0)):
            value = table.get(name, default)
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise ConfigError(f"proxy.{name}: must be a positive number of seconds")
            timeouts[name] = float(value)
        connections = table.get("max_connections", 100)
        if isinstance(connections, bool) or not isinstance(connections, int) or connections < 1:
            raise ConfigError("proxy.max_connections: must be a whole number >= 1")
        strip = table.get("strip_prefix")
        if strip is not None and (
            not isinstance(strip, str) or not strip.startswith("/") or strip.endswith("/")
        ):
            raise ConfigError('proxy.strip_prefix: must be a path prefix such as "/v1"')
        forward = table.get("forward_headers", list(DEFAULT_FORWARDED_HEADERS))
        if not isinstance(forward, list) or not all(isinstance(n, str) and n for n in forward):
            raise ConfigError("proxy.forward_headers: must be a list of header names")
        fixed = table.get("upstream_headers", {})
        if not isinstance(fixed, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in fixed.items()
        ):
            raise ConfigError('proxy.upstream_headers: must be a table of "Name" = "value"')
        try:
            check_headers(forward, fixed)
        except ValueError as exc:
            raise ConfigError(f"proxy.{exc}") from None
        if url is not None:
            try:
                check_upstream_url(url, stripping=strip is not None)
            except ValueError as exc:
                raise ConfigError(f"proxy.upstream_url: {exc}") from None
        return cls(
            upstream_url=url,
            forward_headers=tuple(forward),
            upstream_headers=dict(fixed),
            upstream_api_key=key,
            auth_style=style,
            transport=transport,
            max_connections=connections,
            strip_prefix=strip,
            **timeouts,
        )

    def build(self, upstream_url: str | None = None) -> UpstreamProxy:
        url = upstream_url or self.upstream_url
        if url is None:
            raise ConfigError("proxy.upstream_url: not set (or run with --demo)")
        return UpstreamProxy(
            url,
            api_key=self.upstream_api_key,
            auth_style=self.auth_style,
            transport=self.transport,
            timeout=httpx.Timeout(self.timeout_seconds, connect=self.connect_timeout_seconds),
            max_connections=self.max_connections,
            strip_prefix=self.strip_prefix,
            forward_headers=self.forward_headers,
            upstream_headers=self.upstream_headers,
        )
