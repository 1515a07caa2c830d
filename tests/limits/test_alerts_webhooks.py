"""Threshold alerts end to end: real servers on one real Redis, a real HTTP receiver."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import orjson

from budget_guard.alerts import SIGNATURE_HEADER, verify
from tests.limits.support import (
    COMPANY,
    LIMITS,
    SECRET,
    USAGE,
    Receiver,
    admin,
    config,
    receiver,
    servers,
    user,
)


def alerting(redis_url: str, hook: str, thresholds: list[float]) -> dict[str, object]:
    return config(
        redis_url,
        f"alerts-{uuid.uuid4().hex[:8]}:",
        alerts={
            "thresholds": thresholds,
            "webhooks": [hook],
            "secret": SECRET,
            "backoff_seconds": 0.05,
        },
    )


def wait_for(state: Receiver, count: int, settle: float = 0.5) -> None:
    """Until ``count`` deliveries arrived, then a little longer, to see any extra one."""
    deadline = time.monotonic() + 10
    while len(state.received) < count:
        assert time.monotonic() < deadline, f"{len(state.received)} of {count} deliveries"
        time.sleep(0.02)
    time.sleep(settle)


def payloads(state: Receiver) -> list[dict[str, object]]:
    return [orjson.loads(body) for _, body in state.received]


async def record_concurrently(urls: list[str], count: int, tokens: int) -> None:
    async with httpx.AsyncClient(headers=user()) as http:
        replies = await asyncio.gather(
            *(
                http.post(urls[i % len(urls)] + USAGE, json={"tokensUsed": tokens})
                for i in range(count)
            )
        )
    assert all(reply.status_code == 200 for reply in replies)


def test_two_workers_crossing_together_deliver_exactly_one_signed_event(
    redis_url: str,
) -> None:
    with receiver() as (hook, state), servers(2, alerting(redis_url, hook, [0.8])) as urls:
        # 40 requests of 25 tokens from two servers at once: 80 % of 1000 is crossed by
        # whichever lands 32nd, and only that one is told.
        asyncio.run(record_concurrently(urls, 40, 25))
        wait_for(state, 1)
    assert len(state.received) == 1
    headers, body = state.received[0]
    assert verify(SECRET, headers, body)
    assert not verify("another-secret", headers, body)
    assert headers[SIGNATURE_HEADER.lower()].startswith("sha256=")
    [event] = payloads(state)
    assert event["type"] == "budget.threshold_crossed"
    assert event["companyId"] == COMPANY.hex and event["threshold"] == 0.8
    assert event["tokenLimit"] == 1000 and event["windowDays"] == 30
    assert 800 <= event["tokensUsed"] < 1000  # type: ignore[operator]
    assert event["freesAt"] is None  # still under the limit
    assert str(event["id"]).startswith("evt_")


def test_a_receiver_that_fails_twice_gets_the_event_once(redis_url: str) -> None:
    with (
        receiver(failures=2) as (hook, state),
        servers(1, alerting(redis_url, hook, [1.0])) as [url],
    ):
        reply = httpx.post(url + USAGE, json={"tokensUsed": 1200}, headers=user())
        assert reply.status_code == 200  # answered at once, whatever the receiver does
        wait_for(state, 1)
        metrics = httpx.get(url + "/metrics").text
    assert "budget_guard_alerts_delivered_total 1.0" in metrics
    assert "budget_guard_alerts_dropped_total 0.0" in metrics
    assert "budget_guard_alerts_pending 0.0" in metrics
    assert state.attempts == 3 and len(state.received) == 1
    [event] = payloads(state)
    assert event["threshold"] == 1.0 and event["tokensUsed"] == 1200
    assert event["freesAt"] is not None  # over the limit: when the window frees it


def test_a_limit_raised_at_run_time_rearms_the_thresholds_it_moved_under(
    redis_url: str,
) -> None:
    with (
        receiver() as (hook, state),
        servers(1, alerting(redis_url, hook, [0.5, 0.8])) as [url],
        httpx.Client(base_url=url) as http,
    ):
        http.post(USAGE, json={"tokensUsed": 850}, headers=user())
        wait_for(state, 2, settle=0.1)
        http.put(LIMITS, json={"companyId": str(COMPANY), "tokenLimit": 2000}, headers=admin())
        http.post(USAGE, json={"tokensUsed": 300}, headers=user())  # 1150 / 2000
        wait_for(state, 3)
    seen = [(e["threshold"], e["tokenLimit"]) for e in payloads(state)]
    # Both fired at 850 / 1000 (in either order: deliveries run side by side); raising the
    # limit to 2000 moved both above the usage, and 1150 / 2000 crosses 50 % again only.
    assert sorted(seen[:2]) == [(0.5, 1000), (0.8, 1000)] and seen[2:] == [(0.5, 2000)]


def test_a_receiver_that_is_down_does_not_slow_or_fail_requests(redis_url: str) -> None:
    dead = "http://127.0.0.1:9/hook"  # nothing listens on the discard port
    with servers(1, alerting(redis_url, dead, [0.1, 0.2, 0.3])) as [url]:
        started = time.monotonic()
        for _ in range(5):
            reply = httpx.post(url + USAGE, json={"tokensUsed": 100}, headers=user())
            assert reply.status_code == 200
        assert time.monotonic() - started < 5
