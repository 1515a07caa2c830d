"""A guard with weights charges, reserves and refuses in budget tokens; without, in raw tokens."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from budget_guard.budget.weights import BudgetWeights
from budget_guard.guard import GuardSettings
from tests.guard.conftest import COMPANY_A, KEY_A, guarded_proxy
from tests.proxy.servers import serve

AUTH = {"Authorization": f"Bearer {KEY_A}"}
WEIGHTS = BudgetWeights.from_tables(
    {"input": 1, "cached_input": 0.1, "output": 4}, {"gpt-4o-mini*": 0.06, "gpt-4o*": 1}
)


async def _cached_prompt_reply(request: Request) -> JSONResponse:
    """An upstream that served a 10,000-token prompt, 8,192 of it from its cache."""
    body = await request.json()
    usage = {
        "prompt_tokens": 10_000,
        "completion_tokens": 500,
        "total_tokens": 10_500,
        "prompt_tokens_details": {"cached_tokens": 8_192},
        "completion_tokens_details": {"reasoning_tokens": 0},
    }
    message = {"role": "assistant", "content": "ok"}
    choice = {"index": 0, "message": message, "finish_reason": "stop"}
    return JSONResponse(
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": body["model"],
            "choices": [choice],
            "usage": usage,
        }
    )


@pytest.fixture(scope="module")
def caching_upstream_url() -> Iterator[str]:
    with serve(
        Starlette(routes=[Route("/v1/chat/completions", _cached_prompt_reply, methods=["POST"])])
    ) as url:
        yield url


def _chat(model: str, max_tokens: int = 600) -> dict[str, object]:
    return {
        "model": model,
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": max_tokens,
    }


@pytest.mark.parametrize(("weights", "charged"), [(None, 10_500 + 10_500), (WEIGHTS, 4_628 + 278)])
async def test_each_model_is_charged_its_weighted_tokens(
    caching_upstream_url: str, weights: BudgetWeights | None, charged: int
) -> None:
    with guarded_proxy(caching_upstream_url, weights=weights) as g:
        async with httpx.AsyncClient(base_url=g.url, timeout=30) as http:
            for model in ("gpt-4o", "gpt-4o-mini"):
                answer = await http.post("/v1/chat/completions", headers=AUTH, json=_chat(model))
                assert answer.status_code == 200
        assert (await g.ledger.snapshot(COMPANY_A)).tokens_used == charged
        # The raw tokens by kind are kept whatever the weights: two requests' worth.
        breakdown = await g.ledger.breakdown(COMPANY_A)
        assert (breakdown["input"], breakdown["cached_input"]) == (20_000, 16_384)
        assert (breakdown["output"], breakdown["reasoning"]) == (1_000, 0)


async def test_strict_mode_holds_and_refuses_weighted_tokens(caching_upstream_url: str) -> None:
    """Limit 5,000: a gpt-4o request of ~8 prompt tokens and max_tokens 1,000 holds about
    4,008 budget tokens and is served; with max_tokens 2,000 it would hold about 8,008 and is
    refused, though its 2,008 raw tokens would fit."""
    settings = GuardSettings(strict=True)
    with guarded_proxy(caching_upstream_url, limit=5_000, settings=settings, weights=WEIGHTS) as g:
        async with httpx.AsyncClient(base_url=g.url, timeout=30) as http:
            refused = await http.post(
                "/v1/chat/completions", headers=AUTH, json=_chat("gpt-4o", 2_000)
            )
            assert refused.status_code == 429
            served = await http.post(
                "/v1/chat/completions", headers=AUTH, json=_chat("gpt-4o", 1_000)
            )
            assert served.status_code == 200
            snapshot = await g.ledger.snapshot(COMPANY_A)
            assert (snapshot.tokens_used, snapshot.tokens_reserved) == (4_628, 0)
            assert (await g.ledger.breakdown(COMPANY_A))["cached_input"] == 8_192, "settled"
            # 4,628 used of 5,000: a cheap model's request still fits, a dear one does not.
            assert (
                await http.post("/v1/chat/completions", headers=AUTH, json=_chat("gpt-4o", 600))
            ).status_code == 429
            assert (
                await http.post("/v1/chat/completions", headers=AUTH, json=_chat("gpt-4o-mini"))
            ).status_code == 200
