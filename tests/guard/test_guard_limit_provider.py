"""The host's limit provider failing (its database down, say) is handled like the store being
down: nothing is lost, nothing is counted twice, and no request becomes a 500."""

from __future__ import annotations

import uuid

import httpx

from budget_guard.guard import GuardSettings

from .conftest import (
    COMPANY_A,
    FAIL_OPEN_CHAT,
    KEY_A,
    guarded_proxy,
    journal_replayed,
    served_burst,
)

AUTH = {"Authorization": f"Bearer {KEY_A}"}


class FlakyProvider:
    """Answers 500,000 for every company, or raises while ``down``."""

    def __init__(self) -> None:
        self.down = False

    async def __call__(self, company: uuid.UUID) -> int | None:
        if self.down:
            raise ConnectionError("limits database at db.internal:5432 refused the connection")
        return 500_000


async def test_fail_open_serves_journals_and_replays_once_the_provider_is_back(
    demo_upstream_url: str,
) -> None:
    provider = FlakyProvider()
    with guarded_proxy(demo_upstream_url, provider=provider) as g:
        async with httpx.AsyncClient(base_url=g.url, timeout=30) as http:
            provider.down = True
            total = await served_burst(http, 10)
            middleware = g.middleware()
            assert middleware is not None and len(middleware.journal) == 10
            provider.down = False
            await journal_replayed(g)
    snapshot = await g.ledger.snapshot(COMPANY_A)
    assert snapshot.tokens_used == total and snapshot.token_limit == 500_000


async def test_fail_closed_and_the_usage_endpoint_answer_503(demo_upstream_url: str) -> None:
    provider = FlakyProvider()
    provider.down = True
    settings = GuardSettings(on_store_error="closed")
    with guarded_proxy(demo_upstream_url, provider=provider, settings=settings) as g:
        async with httpx.AsyncClient(base_url=g.url, timeout=30) as http:
            chat = await http.post("/v1/chat/completions", headers=AUTH, json=FAIL_OPEN_CHAT)
            usage = await http.post(
                "/assistant/ai-chat/usage", headers=AUTH, json={"tokensUsed": 7}
            )
    assert chat.status_code == 503
    assert chat.json()["error"]["code"] == "budget_store_unavailable"
    assert usage.status_code == 503
    assert usage.json()["responseStatus"]["errorCode"] == "ServiceUnavailable"
    for answer in (chat, usage):
        assert "db.internal" not in answer.text and "ConnectionError" not in answer.text
    provider.down = False
    assert (await g.ledger.snapshot(COMPANY_A)).tokens_used == 0
