"""Counting on the assembled server: large prompts never stall other requests, and the body
shape bounds are settings answered with OpenAI's 400."""

from __future__ import annotations

import asyncio
import statistics
import time

import httpx
import orjson
import pytest

from budget_guard.budget.window import ConfigError
from budget_guard.guard import GuardSettings
from tests.security.sec_support import (
    ADMIN_KEY,
    CHAT,
    COMPANY_A,
    COMPANY_B,
    ENDPOINT,
    KEY_A,
    KEY_B,
    LIMIT_B,
    assert_openai_error,
    bearer,
    guarded_server,
)

CJK = "お誕生日おめでとう日本語の文章です。"
TEN_MB_CJK_CHAT = orjson.dumps(
    {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": CJK * (10_000_000 // len(CJK.encode()) + 1)}],
    }
)
SMALL_CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]}
LIMIT_A = 1_000


async def test_health_and_other_companies_answer_while_four_10_mb_prompts_are_counted() -> None:
    """Issue 12: four concurrent 10 MB CJK prompts stalled /healthz for 9 s. Company A's are
    counted in full and refused (A is over budget), while /healthz and company B's chats are
    timed as they go; counted inline, each probe would wait out seconds of tiktoken."""
    guard = {"max_body_bytes": 11 * 1024 * 1024, "body_timeout_seconds": 60.0}
    budget = {"limits": {str(COMPANY_A): LIMIT_A, str(COMPANY_B): LIMIT_B}}
    with guarded_server(guard=guard, budget=budget) as target:
        async with httpx.AsyncClient(base_url=target.url, timeout=60) as http:
            spent = await http.post(
                ENDPOINT,
                json={"companyId": str(COMPANY_A), "tokensUsed": LIMIT_A},
                headers=bearer(ADMIN_KEY),
            )
            assert spent.status_code == 200, spent.text
            big = [
                asyncio.create_task(
                    http.post(
                        CHAT,
                        content=TEN_MB_CJK_CHAT,
                        headers={**bearer(KEY_A), "Content-Type": "application/json"},
                    )
                )
                for _ in range(4)
            ]
            health: list[float] = []
            chats: list[float] = []
            while not all(task.done() for task in big):
                started = time.perf_counter()
                answer = await http.get("/healthz")
                health.append(time.perf_counter() - started)
                assert answer.status_code == 200, answer.text
                started = time.perf_counter()
                answer = await http.post(CHAT, json=SMALL_CHAT, headers=bearer(KEY_B))
                chats.append(time.perf_counter() - started)
                assert answer.status_code == 200, answer.text
                await asyncio.sleep(0.01)
            refusals = [task.result() for task in big]
    # Each big prompt was read, counted and refused for A's budget, not for its size or shape.
    assert [r.status_code for r in refusals] == [429] * 4, [r.text[:200] for r in refusals]
    assert len(health) >= 5, health
    # Generous for a loaded 2-core CI machine (one probe may meet a scheduler hiccup); the
    # benchmark holds the 100 ms p99 figure. Counted inline, several probes wait a second or
    # more here, and 9 s on the machine of the report.
    assert sorted(health)[-2] < 0.5, sorted(health)[-5:]
    assert sorted(chats)[-2] < 0.5, sorted(chats)[-5:]
    assert statistics.median(health) < 0.1, health


def test_the_array_bound_is_a_setting_and_its_400_names_it() -> None:
    with (
        guarded_server(guard={"max_body_array_items": 100}) as target,
        httpx.Client(base_url=target.url, timeout=15) as http,
    ):
        messages = [{"role": "user", "content": "hi"}] * 101
        body = {"model": "gpt-4o-mini", "messages": messages}
        answer = http.post(CHAT, json=body, headers=bearer(KEY_A))
        assert answer.status_code == 400, answer.text
        error = assert_openai_error(answer.status_code, answer.headers, answer.content)
        assert error == {
            "message": "Invalid 'messages': array too long. Expected an array with maximum "
            "length 100, but got an array with length 101 instead (budget-guard limit "
            "guard.max_body_array_items).",
            "type": "invalid_request_error",
            "param": "messages",
            "code": "invalid_request_body",
        }
        body["messages"] = messages[:100]
        assert http.post(CHAT, json=body, headers=bearer(KEY_A)).status_code == 200


def test_body_bounds_read_from_the_guard_table() -> None:
    settings = GuardSettings.from_table(
        {"max_body_depth": 32, "max_body_array_items": 5000, "max_body_object_keys": 300}
    )
    limits = settings.body_limits()
    assert (limits.max_depth, limits.max_array_items, limits.max_object_keys) == (32, 5000, 300)
    defaults = GuardSettings().body_limits()
    assert (defaults.max_depth, defaults.max_array_items, defaults.max_object_keys) == (
        128,
        1_000_000,
        10_000,
    )


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"max_body_depth": 201}, "guard.max_body_depth: must be at most 200"),
        ({"max_body_depth": 0}, "guard.max_body_depth: must be a whole number >= 1"),
        ({"max_body_array_items": 0}, "guard.max_body_array_items: must be a whole number >= 1"),
        ({"max_body_object_keys": "9"}, "guard.max_body_object_keys: must be a whole number"),
    ],
)
def test_body_bounds_that_make_no_sense_are_refused_at_start(
    table: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        GuardSettings.from_table(table)
