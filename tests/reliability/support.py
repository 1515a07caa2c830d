"""What the reliability tests share: the real ``budget-guard`` command in a subprocess with
its output in a file, a config with many companies, and a fast loopback load client.

The server's output goes to a file, not a pipe: a fault test makes the server log a line per
request while Redis is down, and a pipe nobody drains would fill and block the server's
logging, which would look exactly like the hang these tests exist to rule out.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from tests.cli.processes import Running, clean_environment, serving

USAGE_PATH = "/assistant/ai-chat/usage"
CHAT_PATH = "/v1/chat/completions"
PERSISTENT = ("--appendonly", "yes", "--appendfsync", "always")
"""redis-server arguments for a Redis whose data survives a SIGKILL and restart."""

REQUEST_TIMEOUT = 15.0
"""Every request of these tests must be answered within this; a hang fails the test."""


@dataclass(frozen=True)
class Company:
    id: uuid.UUID
    key: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


def companies(count: int, tag: str = "rel") -> list[Company]:
    return [Company(uuid.uuid4(), f"bg-{tag}-{i}-{uuid.uuid4().hex[:12]}") for i in range(count)]


def write_config(
    path: Path,
    tenants: list[Company],
    *,
    store_url: str = "memory://",
    limit: int = 2_000_000_000,
    upstream_url: str | None = None,
    guard: dict[str, Any] | None = None,
    proxy: dict[str, Any] | None = None,
) -> Path:
    """A config with one ``[[auth.api_keys]]`` per company; no upstream_url means the
    command starts its built-in demo upstream."""
    lines = [
        "[budget]",
        "window_days = 30",
        f"default_token_limit = {limit}",
        "[store]",
        f'url = "{store_url}"',
        f'prefix = "rel-{uuid.uuid4().hex[:8]}:"',
        "socket_timeout_seconds = 0.5",
        "[guard]",
        *(f"{k} = {_toml(v)}" for k, v in (guard or {}).items()),
        "[proxy]",
        'transport = "httpx"',
        *(f"{k} = {_toml(v)}" for k, v in (proxy or {}).items()),
    ]
    if upstream_url is not None:
        lines.append(f'upstream_url = "{upstream_url}"')
    for tenant in tenants:
        lines += [
            "[[auth.api_keys]]",
            f'key = "{tenant.key}"',
            f'company_id = "{tenant.id}"',
            'role = "user"',
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


Server = Running


@contextmanager
def budget_guard(config: Path, *, workers: int = 1, log_level: str = "warning") -> Iterator[Server]:
    """``budget-guard serve --config <config> --workers <n>`` until the block ends, ready when
    /healthz answers (every worker), with the config file deciding (no env overrides)."""
    args = ["--config", str(config), "--workers", str(workers), "--log-level", log_level]
    with serving(
        *args,
        env=clean_environment(),
        log_path=config.with_name(f"{config.stem}.{uuid.uuid4().hex[:8]}.log"),
        ready_path="/healthz",
    ) as server:
        yield server


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any] | None
    headers: dict[str, str]


def http_session(concurrency: int) -> aiohttp.ClientSession:
    """A keep-alive client; every request carries :data:`REQUEST_TIMEOUT` as its deadline."""
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency, force_close=False),
        timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT),
    )


async def call(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    json: Any = None,
) -> Answer:
    """One request; a timeout propagates (and fails the test: the service hung)."""
    async with session.request(method, url, headers=headers, json=json) as response:
        raw = await response.read()
        body = None
        if response.content_type == "application/json" and raw:
            import orjson

            body = orjson.loads(raw)
        return Answer(response.status, body, dict(response.headers))


async def used(session: aiohttp.ClientSession, base: str, company: Company) -> int:
    answer = await call(session, "GET", base + USAGE_PATH, headers=company.auth)
    assert answer.status == 200, answer
    assert answer.body is not None
    return int(answer.body["tokensUsed"])


async def eventually_used(
    session: aiohttp.ClientSession,
    base: str,
    company: Company,
    expected: int,
    *,
    within: float = 20.0,
) -> int:
    """The company's total once it stops moving towards ``expected`` (journals replay in the
    background), or as it stands after ``within`` seconds."""
    deadline = time.monotonic() + within
    total = await used(session, base, company)
    while total != expected and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        total = await used(session, base, company)
    return total
