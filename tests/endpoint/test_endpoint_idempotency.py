"""Idempotent retries: the same ``Idempotency-Key`` from the same caller is counted once."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from endpoint_support import (
    ADMIN_KEY,
    COMPANY_A,
    COMPANY_B,
    PATH,
    USER_A_KEY,
    USER_B_KEY,
    Serve,
    assert_error,
    bearer,
    usage,
)


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
