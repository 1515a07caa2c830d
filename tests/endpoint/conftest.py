"""Live usage endpoints for the tests: uvicorn on a free loopback port, memory or Redis store.

Each test gets its own endpoint and its own store (a fresh memory store, or a unique Redis key
prefix) on one shared server, so tests never see each other's usage.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from endpoint_support import TOKEN_LIMIT, WINDOW_DAYS, Serve, api_keys
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.types import Receive, Scope, Send
from tests.proxy.servers import serve

from budget_guard.auth import Authenticator
from budget_guard.budget.ledger import Ledger
from budget_guard.budget.policy import BudgetPolicy
from budget_guard.budget.window import Window
from budget_guard.endpoint import EndpointSettings, UsageEndpoint
from budget_guard.stores import MemoryStore, RedisStore, UsageStore


class _Switch:
    """One long-lived server whose app each test replaces, so a test pays for a fresh
    endpoint and store but not for starting and stopping uvicorn. ``loop`` is the server's
    event loop, where stores must be closed (a Redis pool belongs to the loop that used it)."""

    def __init__(self) -> None:
        self.app: Any = None
        self.loop: asyncio.AbstractEventLoop | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    self.loop = asyncio.get_running_loop()
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        assert self.app is not None, "no endpoint installed"
        await self.app(scope, receive, send)


@pytest.fixture(scope="session")
def live_server() -> Iterator[tuple[str, _Switch]]:
    switch = _Switch()
    with serve(switch) as url:
        yield url, switch


@pytest.fixture(params=["memory", "redis"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_store(request: pytest.FixtureRequest, store_kind: str) -> Callable[[], UsageStore]:
    def factory() -> UsageStore:
        window = Window(WINDOW_DAYS)
        if store_kind == "memory":
            return MemoryStore(window)
        url = request.getfixturevalue("redis_url")
        return RedisStore.from_url(url, window, prefix=f"test-endpoint-{uuid.uuid4().hex}:")

    return factory


@pytest.fixture
def install_endpoint(live_server: tuple[str, _Switch]) -> Iterator[Serve]:
    """Install a fresh endpoint on the live server and return its base URL; the store must be
    given (for tests about one particular store). Stores are closed when the test ends.

    By default the endpoint's :meth:`UsageEndpoint.routes` are mounted in a Starlette app;
    ``mount`` puts them under a prefix, ``bare`` serves the ASGI app itself (as the budget
    middleware calls it).
    """
    url, switch = live_server
    ledgers: list[Ledger] = []

    def start(
        *,
        settings: EndpointSettings | None = None,
        store: UsageStore | None = None,
        authenticator: Authenticator | None = None,
        token_limit: int = TOKEN_LIMIT,
        mount: str | None = None,
        bare: bool = False,
    ) -> str:
        assert store is not None, "install_endpoint needs a store; serve_endpoint makes one"
        ledger = Ledger(store, BudgetPolicy(store.window, default_token_limit=token_limit))
        ledgers.append(ledger)
        endpoint = UsageEndpoint(ledger, authenticator or api_keys(), settings=settings)
        if bare:
            switch.app = endpoint
        elif mount:
            switch.app = Starlette(routes=[Mount(mount, routes=endpoint.routes())])
        else:
            switch.app = Starlette(routes=endpoint.routes())
        return url

    yield start
    switch.app = None
    assert switch.loop is not None
    for ledger in ledgers:
        asyncio.run_coroutine_threadsafe(ledger.aclose(), switch.loop).result(10)


@pytest.fixture
def serve_endpoint(make_store: Callable[[], UsageStore], install_endpoint: Serve) -> Serve:
    """:func:`install_endpoint` with a fresh store of each kind (the test runs once per kind)."""

    def start(*, store: UsageStore | None = None, **options: Any) -> str:
        return install_endpoint(store=store if store is not None else make_store(), **options)

    return start  # type: ignore[return-value]
