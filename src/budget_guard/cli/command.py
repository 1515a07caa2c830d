"""The ``budget-guard`` command: ``budget-guard serve`` runs the complete guarded proxy, and
``budget-guard check`` checks its config without serving (``usage`` and ``limits``: see there)."""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging.config
import os
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import uvicorn

from budget_guard.auth import AuthConfigError
from budget_guard.budget.window import ConfigError
from budget_guard.cli.limits import add_limits_command, run_limits
from budget_guard.cli.usage import add_usage_command, run_usage
from budget_guard.config import CONFIG_ENV, Settings, load_settings
from budget_guard.server.connections import BoundedConfig, ConnectionBounds
from budget_guard.server.descriptors import raise_descriptor_limit, reserved_descriptors
from budget_guard.server.settings import ServerSettings
from budget_guard.stores import StoreError

if TYPE_CHECKING:
    from budget_guard.checked_config import CheckedConfig

DEFAULT_HOST = ServerSettings.host
DEFAULT_PORT = ServerSettings.port


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="budget-guard",
        description="A hard per-company token budget in front of an OpenAI-compatible API.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser(
        "check", help="check a config file and print the configuration it gives (secrets masked)"
    )
    check.add_argument("--config", help=f"TOML config file (or ${CONFIG_ENV})")
    serve = commands.add_parser("serve", help="run the guarded proxy")
    serve.add_argument("--config", help=f"TOML config file (or ${CONFIG_ENV})")
    serve.add_argument("--host", default=None, help=f"address to listen on ({DEFAULT_HOST})")
    serve.add_argument("--port", type=int, default=None, help=f"port ({DEFAULT_PORT})")
    serve.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    serve.add_argument(
        "--demo", action="store_true", help="start the built-in demo upstream (no API key)"
    )
    serve.add_argument("--log-level", default="info", help="uvicorn log level")
    add_usage_command(commands)
    add_limits_command(commands)
    args = parser.parse_args(argv)
    try:
        if args.command == "usage":
            return run_usage(args)
        if args.command == "limits":
            return run_limits(args)
        if args.command == "check":
            return _check(args)
        return _serve(args)
    except (ConfigError, AuthConfigError) as exc:
        print(f"budget-guard: config error: {exc}", file=sys.stderr)
    except _StartupError as exc:
        print(f"budget-guard: {exc}", file=sys.stderr)
    except BrokenPipeError:
        # The reader left (`budget-guard usage | head`): nothing more to say, and Python's
        # own flush at exit must not complain either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return 2


class _StartupError(Exception):
    pass


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("budget-guard")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def _check(args: argparse.Namespace) -> int:
    """``budget-guard check``: every check ``serve`` runs before it listens, then the
    effective configuration (defaults filled in, secrets masked) on stdout."""
    from budget_guard.checked_config import check_config, effective_toml

    settings = load_settings(args.config)
    checked = check_config(settings)
    print(f"# budget-guard {_version()}: {settings.source or 'built-in defaults'} is valid")
    if checked.authenticator is None:
        print("# no [auth]: serve would run with a demo key printed at start-up")
    print(effective_toml(checked), end="")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from budget_guard.app import DEMO_KEY_ENV, UPSTREAM_ENV, build_app, demo_key

    if args.config:
        os.environ[CONFIG_ENV] = args.config
    from budget_guard.checked_config import check_config

    settings = load_settings(args.config)
    checked = check_config(settings)  # every table, before anything prints or listens
    log_config = _log_config(settings, args.log_level)
    server = checked.server
    host = args.host or server.host
    port = args.port if args.port is not None else server.port
    if args.workers < 1:
        raise _StartupError("--workers must be at least 1")
    if args.workers > 1 and settings.store.url.startswith("memory"):
        raise _StartupError(
            "--workers > 1 needs a shared store: the memory store lives in one process, so N "
            'workers would each allow the full budget. Set [store] url = "redis://...".'
        )
    proxy = checked.proxy
    demo = demo_key() if "auth" not in settings.raw else None
    _check_store(settings)
    sock = _bind(host, port)

    upstream_url = None
    if args.demo or proxy.upstream_url is None:
        upstream_url = _start_demo_upstream()
    bounds = _connection_bounds(
        server,
        upstream_pool=proxy.max_connections,
        demo_upstream=upstream_url is not None,
        remote_store=not settings.store.url.startswith("memory"),
    )
    _banner(
        checked,
        host,
        sock.getsockname()[1],
        upstream_url or proxy.upstream_url,
        is_demo=upstream_url is not None,
        demo=demo,
        connections=_connections_line(server, bounds),
    )

    if demo is not None:
        os.environ[DEMO_KEY_ENV] = demo.key
    if upstream_url is not None:
        os.environ[UPSTREAM_ENV] = upstream_url
    if args.workers > 1:
        # uvicorn.run(workers=N) would bind a socket of its own, created without
        # IPPROTO_TCP, so asyncio never sets TCP_NODELAY on its connections and every
        # kept-alive response waits ~40 ms for a delayed ACK (measured: 47 ms per request).
        # Hand the workers the socket bound above instead, as uvicorn.run does internally.
        from uvicorn.supervisors import Multiprocess

        # Every worker's metrics in files of one directory, summed on each scrape (set before
        # the workers start: prometheus_client reads it at import).
        metrics_dir = tempfile.TemporaryDirectory(prefix="budget-guard-metrics-")
        os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", metrics_dir.name)
        config = BoundedConfig(
            "budget_guard.app:app_from_env",
            bounds=bounds,
            keep_alive_seconds=server.keep_alive_seconds,
            factory=True,
            workers=args.workers,
            log_level=args.log_level,
            log_config=log_config,
        )
        with metrics_dir:
            Multiprocess(config, sockets=[sock]).run()
        return 0
    app = build_app(settings, upstream_url=upstream_url, demo=demo)
    uvicorn.Server(
        BoundedConfig(
            app,
            bounds=bounds,
            keep_alive_seconds=server.keep_alive_seconds,
            log_level=args.log_level,
            lifespan="on",
            log_config=log_config,
        )
    ).run(sockets=[sock])
    return 0


def _connection_bounds(
    server: ServerSettings, *, upstream_pool: int, demo_upstream: bool, remote_store: bool
) -> ConnectionBounds:
    """The bounds each worker enforces, the cap kept below the descriptor limit (raised to
    the hard limit first) so that a flood of connections never makes accept() fail."""
    reserved = reserved_descriptors(
        upstream_pool=upstream_pool, demo_upstream=demo_upstream, remote_store=remote_store
    )
    return ConnectionBounds(
        header_timeout_seconds=server.header_timeout_seconds,
        max_connections=server.connection_bound(raise_descriptor_limit(), reserved),
        http=server.http,
    )


def _connections_line(server: ServerSettings, bounds: ConnectionBounds) -> str:
    line = f"  connections: at most {bounds.max_connections:,} per worker"
    if bounds.max_connections < server.max_connections:
        line += f" (server.max_connections {server.max_connections:,} lowered: descriptor limit)"
    return (
        line + f"; request head within {server.header_timeout_seconds:g} s, "
        f"idle keep-alive {server.keep_alive_seconds:g} s; {server.http}"
    )


def _log_config(settings: Settings, level: str) -> dict[str, Any]:
    """JSON lines (``[observability] json_logs``, the default) for our lines and uvicorn's,
    configured now so the start-up config line goes out in the same format."""
    from budget_guard.observability import (
        ObservabilitySettings,
        json_logging_config,
        log_startup_config,
        secrets_in,
    )

    if not ObservabilitySettings.from_table(settings.table("observability")).json_logs:
        return uvicorn.config.LOGGING_CONFIG
    config = json_logging_config(level, secrets_in(settings))
    logging.config.dictConfig(config)
    log_startup_config(settings)
    return config


def _check_store(settings: Settings) -> None:
    if settings.store.url.startswith("memory"):
        return

    async def ping() -> None:
        store = settings.store.open(settings.budget.window)
        try:
            await store.ping()
        finally:
            await store.aclose()

    try:
        asyncio.run(ping())
    except StoreError:
        raise _StartupError(
            f"store.url: {_redact(settings.store.url)} does not answer (is Redis running?)"
        ) from None


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio turns on TCP_NODELAY only for sockets that say they are
    # TCP; without it a kept-alive connection waits ~40 ms (delayed ACK) on every response.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise _StartupError(f"port {port} on {host} is already in use") from None
        raise _StartupError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


def _start_demo_upstream() -> str:
    """Serve the demo upstream on a free loopback port, in a thread of this process."""
    from budget_guard.proxy.demo_upstream import create_demo_upstream

    sock = _bind("127.0.0.1", 0)
    config = uvicorn.Config(create_demo_upstream(), log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="demo-upstream", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise _StartupError("the demo upstream did not start")
        time.sleep(0.01)
    return f"http://127.0.0.1:{sock.getsockname()[1]}"


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def _banner(
    checked: CheckedConfig,
    host: str,
    port: int,
    upstream: str | None,
    *,
    is_demo: bool,
    demo: object,
    connections: str,
) -> None:
    """What is running and every URL it answers, so a newcomer can click through it all."""
    from budget_guard.app import DemoKey

    settings, guard, endpoint = checked.settings, checked.guard, checked.endpoint
    shown = f"[{host}]" if ":" in host else host
    base = f"http://{shown}:{port}"
    store = _redact(settings.store.url)
    if store.startswith("memory"):
        store += " (embedded, this process only)"
    window = settings.budget.window
    lines = [
        f"budget-guard {_version()} listening on {base}",
        f"  store:      {store}",
        f"  upstream:   {upstream}" + (" (built-in demo)" if is_demo else ""),
        f"  budget:     {settings.budget.default_token_limit:,} tokens per {window.days} days "
        f"by default, {len(settings.budget.limits)} company override(s); "
        + (
            "strict (reserve, then settle)"
            if guard.strict
            else "overshoot up to the requests in flight"
        )
        + f"; store down -> fail-{guard.on_store_error}",
        connections,
        "  serving:",
        *(f"    proxy        {base}{prefix}..." for prefix in guard.paths),
    ]
    if endpoint.enabled:
        lines.append(f"    usage API    {base}{endpoint.path}")
        if endpoint.openapi_path:
            lines.append(f"    OpenAPI      {base}{endpoint.openapi_path}")
    lines.append(f"    usage page   {base}{endpoint.path}/ui")
    if checked.observability.metrics:
        lines.append(f"    metrics      {base}{checked.observability.metrics_path}")
    lines += [f"    health       {base}/healthz", f"    ready        {base}/readyz"]
    if isinstance(demo, DemoKey):
        lines += [
            f"  demo key:   {demo.key}  (company {demo.company_id}; no [auth] in the config)",
            f"  try:        curl -s {base}/v1/chat/completions -H 'Authorization: Bearer "
            f"{demo.key}' -H 'Content-Type: application/json' -d "
            '\'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hi"}]}\'',
            f"              curl -s {base}{endpoint.path} -H 'Authorization: Bearer {demo.key}'",
        ]
    print("\n".join(lines), flush=True)
