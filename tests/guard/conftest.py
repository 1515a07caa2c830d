"""A real guarded proxy for the guard tests: the demo upstream and the guard each served by
uvicorn on loopback, so requests cross real sockets as they do in production."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Route

from budget_guard.auth import ApiKey, ApiKeyAuthenticator, Authenticator, Role
from budget_guard.budget.clock import Clock, system_clock
from budget_guard.budget.ledger import Ledger
from budget_guard.budget.policy import BudgetPolicy, LimitProvider
from budget_guard.budget.weights import BudgetWeights
from budget_guard.budget.window import Window
from budget_guard.guard import BudgetGuardMiddleware, GuardSettings
from budget_guard.proxy import UpstreamProxy
from budget_guard.proxy.demo_upstream import create_demo_upstream
from budget_guard.stores import MemoryStore, UsageStore
from tests.proxy.servers import serve

COMPANY_A = uuid.UUID("3fa85f64-5717-4562-b3fc-2c963f66afa6")
COMPANY_B = uuid.UUID("7c9e6679-7425-40de-944b-e07fc1f90ae7")
KEY_A = "bg-test-company-a"
KEY_B = "bg-test-company-b"
ADMIN_KEY = "bg-test-admin"
USAGE_ENDPOINT = True


@dataclass
class Guarded:
    url: str
    ledger: Ledger
    middleware: Callable[[], BudgetGuardMiddleware | None]


def authenticator() -> ApiKeyAuthenticator:
    return ApiKeyAuthenticator(
        [
            ApiKey(KEY_A, COMPANY_A, name="a"),
            ApiKey(KEY_B, COMPANY_B, name="b"),
            ApiKey(ADMIN_KEY, COMPANY_A, Role.ADMIN, name="admin"),
        ]
    )


@pytest.fixture(scope="session")
def demo_upstream_url() -> Iterator[str]:
    with serve(create_demo_upstream()) as url:
        yield url


@pytest.fixture(scope="session")
def slow_upstream_url() -> Iterator[str]:
    with serve(create_demo_upstream(chunk_delay=0.2)) as url:
        yield url


@contextmanager
def guarded_proxy(
    upstream_url: str,
    *,
    limit: int = 1_000_000,
    limits: dict[uuid.UUID, int] | None = None,
    settings: GuardSettings | None = None,
    store: UsageStore | None = None,
    clock: Clock = system_clock,
    provider: LimitProvider | None = None,
    auth: Authenticator | None = None,
    weights: BudgetWeights | None = None,
) -> Iterator[Guarded]:
    """The guard in front of an upstream proxy, the way build_app assembles it."""
    window = Window(30)
    store = store or MemoryStore(window, clock=clock)
    ledger = Ledger(
        store,
        BudgetPolicy(window, default_token_limit=limit, limits=limits, provider=provider),
        weights=weights,
    )
    proxy = UpstreamProxy(upstream_url, api_key="sk-upstream-secret", transport="httpx")
    holder: list[BudgetGuardMiddleware] = []

    class Capturing(BudgetGuardMiddleware):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            holder.append(self)

    app = Starlette(routes=[Route("/v1/{path:path}", proxy)])
    guarded = Capturing(
        app,
        ledger=ledger,
        authenticator=auth or authenticator(),
        settings=settings,
        usage_endpoint=USAGE_ENDPOINT,
        clock=clock,
    )
    with serve(guarded) as url:
        yield Guarded(url, ledger, lambda: holder[0] if holder else None)


FAIL_OPEN_CHAT = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "Hi"}],
    "max_tokens": 5,
}


async def served_burst(http: httpx.AsyncClient, n: int) -> int:
    """``n`` concurrent chats as company A, every one of which must be served (fail-open
    serves through a store outage); the tokens the upstream reported for them."""
    answers = await asyncio.gather(
        *(
            http.post(
                "/v1/chat/completions",
                headers={"Authorization": f"Bearer {KEY_A}"},
                json=FAIL_OPEN_CHAT,
            )
            for _ in range(n)
        )
    )
    assert all(a.status_code == 200 for a in answers), "fail-open must serve"
    return sum(a.json()["usage"]["total_tokens"] for a in answers)


async def journal_replayed(guarded: Guarded) -> None:
    """Waits (up to 10 s) for the fail-open journal to be written to the store."""
    middleware = guarded.middleware()
    assert middleware is not None
    for _ in range(200):
        if len(middleware.journal) == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the journal was not replayed")
