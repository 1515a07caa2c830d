"""Idempotent retries: the same ``Idempotency-Key`` from the same caller is counted once."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from endpoint_support import (
    ADMIN_KEY,
    COMPANY_A,
    COMPANY_B,
    PATH,
    USER_A_KEY,
    USER_B_KEY,
    WINDOW_DAYS,
    Serve,
    assert_error,
    bearer,
    usage,
)

from budget_guard.budget.window import Window
from budget_guard.stores import MemoryStore, RedisStore, UsageStore


def _post(
    url: str, body: dict[str, object], key: str, api_key: str | None = None
) -> httpx.Response:
    headers = bearer(api_key) if api_key else bearer()
    return httpx.post(url + PATH, json=body, headers={**headers, "Idempotency-Key": key})


def test_a_retry_is_counted_once_and_answered_like_the_first(serve_endpoint: Serve) -> None:
    url = serve_endpoint()
    httpx.post(url + PATH, json={"tokensUsed": 100}, headers=bearer())
    first = _post(url, {"tokensUsed": 1200}, "turn-1")
    assert usage(first)["tokensUsed"] == 1300
    assert "idempotent-replayed" not in first.headers
    # Other usage lands in between; the retry still answers what the first call answered.
    httpx.post(url + PATH, json={"tokensUsed": 5}, headers=bearer())
    retry = _post(url, {"tokensUsed": 1200}, "turn-1")
    assert retry.headers["idempotent-replayed"] == "true"
    assert usage(retry) == usage(first)
    assert usage(httpx.get(url + PATH, headers=bearer()))["tokensUsed"] == 1305


def test_a_retry_may_change_format_and_spelling_but_not_the_turn(serve_endpoint: Serve) -> None:
    url = serve_endpoint()
    _post(url, {"tokensUsed": 50}, "turn-1")
    retry = httpx.post(
        url + PATH + ".jsv?tokens_used=50",
        headers=bearer(**{"Idempotency-Key": '"turn-1"'}),
    )
    assert retry.status_code == 200
    assert retry.headers["idempotent-replayed"] == "true"
    assert usage(httpx.get(url + PATH, headers=bearer()))["tokensUsed"] == 50


def test_a_key_reused_with_other_tokens_is_422(serve_endpoint: Serve) -> None:
    url = serve_endpoint()
    _post(url, {"tokensUsed": 10}, "turn-1")
    assert_error(_post(url, {"tokensUsed": 11}, "turn-1"), 422, "IdempotencyKeyReused")
    assert usage(httpx.get(url + PATH, headers=bearer()))["tokensUsed"] == 10


def test_an_admin_reusing_a_key_for_another_company_is_422(serve_endpoint: Serve) -> None:
    url = serve_endpoint()
    first = _post(url, {"tokensUsed": 10, "companyId": str(COMPANY_A)}, "turn-1", ADMIN_KEY)
    assert usage(first)["companyId"] == COMPANY_A.hex
    other = _post(url, {"tokensUsed": 10, "companyId": str(COMPANY_B)}, "turn-1", ADMIN_KEY)
    assert_error(other, 422, "IdempotencyKeyReused")
    assert usage(httpx.get(url + PATH, headers=bearer(USER_B_KEY)))["tokensUsed"] == 0
    retry = _post(url, {"tokensUsed": 10, "companyId": COMPANY_A.hex}, "turn-1", ADMIN_KEY)
    assert retry.headers["idempotent-replayed"] == "true"
    assert usage(httpx.get(url + PATH, headers=bearer()))["tokensUsed"] == 10


def test_keys_are_scoped_by_caller(serve_endpoint: Serve) -> None:
    url = serve_endpoint()
    mine = _post(url, {"tokensUsed": 10, "companyId": str(COMPANY_A)}, "turn-1")
    theirs = _post(url, {"tokensUsed": 10, "companyId": str(COMPANY_A)}, "turn-1", ADMIN_KEY)
    assert "idempotent-replayed" not in mine.headers
    assert "idempotent-replayed" not in theirs.headers
    assert usage(theirs)["tokensUsed"] == 20


def test_a_refused_request_does_not_use_up_its_key(serve_endpoint: Serve) -> None:
    url = serve_endpoint()
    assert _post(url, {"tokensUsed": -1}, "turn-1").status_code == 400
    assert usage(_post(url, {"tokensUsed": 3}, "turn-1"))["tokensUsed"] == 3


def test_without_a_key_every_request_counts(serve_endpoint: Serve) -> None:
    url = serve_endpoint()
    for _ in range(3):
        httpx.post(url + PATH, json={"tokensUsed": 2}, headers=bearer())
    assert usage(httpx.get(url + PATH, headers=bearer()))["tokensUsed"] == 6


@pytest.mark.parametrize("api_key", [USER_A_KEY, ADMIN_KEY])
async def test_concurrent_retries_of_one_key_count_once(
    serve_endpoint: Serve, api_key: str
) -> None:
    url = serve_endpoint()
    headers = bearer(api_key, **{"Idempotency-Key": "turn-7"})
    body = {"tokensUsed": 700, "companyId": str(COMPANY_A)}
    async with httpx.AsyncClient(base_url=url, limits=httpx.Limits(max_connections=16)) as client:
        answers = await asyncio.gather(
            *(client.post(PATH, json=body, headers=headers) for _ in range(12))
        )
        now = await client.get(PATH, headers=bearer())
    assert {answer.status_code for answer in answers} == {200}
    assert all(usage(answer)["tokensUsed"] == 700 for answer in answers)
    fresh = [answer for answer in answers if "idempotent-replayed" not in answer.headers]
    assert len(fresh) == 1
    assert usage(now)["tokensUsed"] == 700


def _bounded_store(request: pytest.FixtureRequest, store_kind: str, bound: int) -> UsageStore:
    window = Window(WINDOW_DAYS)
    if store_kind == "memory":
        return MemoryStore(window, max_idempotency_keys_per_company=bound)
    return RedisStore.from_url(
        request.getfixturevalue("redis_url"),
        window,
        prefix=f"test-endpoint-{uuid.uuid4().hex}:",
        max_idempotency_keys_per_company=bound,
    )


def test_a_company_at_its_key_bound_gets_429_and_no_other_company_does(
    request: pytest.FixtureRequest, store_kind: str, install_endpoint: Serve
) -> None:
    """Issue 12 item 6: one tenant minting fresh keys is refused on its own."""
    url = install_endpoint(store=_bounded_store(request, store_kind, 2))
    assert _post(url, {"tokensUsed": 0}, "k1").status_code == 200
    assert _post(url, {"tokensUsed": 5}, "k2").status_code == 200
    refused = _post(url, {"tokensUsed": 7}, "k3")
    body = assert_error(refused, 429, "IdempotencyKeysExhausted")
    assert "2 live Idempotency-Keys" in body["message"]
    assert 86_000 < int(refused.headers["retry-after"]) <= 86_400
    assert usage(httpx.get(url + PATH, headers=bearer()))["tokensUsed"] == 5  # nothing recorded
    # Keys the company holds still replay; usage without a key still lands.
    retry = _post(url, {"tokensUsed": 5}, "k2")
    assert retry.status_code == 200
    assert retry.headers["idempotent-replayed"] == "true"
    assert httpx.post(url + PATH, json={"tokensUsed": 7}, headers=bearer()).status_code == 200
    # Company B is untouched, even with the same key names.
    for name in ("k1", "k2"):
        answer = _post(url, {"tokensUsed": 1}, name, USER_B_KEY)
        assert answer.status_code == 200
        assert "idempotent-replayed" not in answer.headers
    # The same refusal in JSV, as every error is in the negotiated format.
    jsv = httpx.post(
        url + PATH + ".jsv", json={"tokensUsed": 1}, headers=bearer(**{"Idempotency-Key": "k4"})
    )
    assert jsv.status_code == 429
    assert jsv.text.startswith("{responseStatus:{errorCode:IdempotencyKeysExhausted,")


def test_an_admins_keys_count_against_the_admin_not_the_company(
    request: pytest.FixtureRequest, store_kind: str, install_endpoint: Serve
) -> None:
    url = install_endpoint(store=_bounded_store(request, store_kind, 2))
    for name in ("a1", "a2"):
        answer = _post(url, {"tokensUsed": 1, "companyId": str(COMPANY_A)}, name, ADMIN_KEY)
        assert answer.status_code == 200
    third = _post(url, {"tokensUsed": 1, "companyId": str(COMPANY_B)}, "a3", ADMIN_KEY)
    assert_error(third, 429, "IdempotencyKeysExhausted")
    # Company A's own allowance is whole: the admin's keys took none of it.
    for name in ("u1", "u2"):
        assert _post(url, {"tokensUsed": 1}, name).status_code == 200
    assert usage(httpx.get(url + PATH, headers=bearer()))["tokensUsed"] == 4
