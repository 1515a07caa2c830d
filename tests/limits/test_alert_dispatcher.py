"""The delivery queue on its own: callbacks, retries, a full queue, giving up, settings."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from budget_guard.alerts import AlertDispatcher, AlertSettings, ThresholdCrossed, sign, verify
from budget_guard.budget.snapshot import UsageSnapshot
from budget_guard.budget.window import ConfigError

COMPANY = uuid.uuid4()


def snapshot(used: int = 900) -> UsageSnapshot:
    return UsageSnapshot(COMPANY, used, 1000, 30, 0, None)


async def until(condition: object, seconds: float = 5.0) -> None:
    async with asyncio.timeout(seconds):
        while not condition():  # type: ignore[operator]
            await asyncio.sleep(0.01)


async def test_a_callback_that_fails_is_retried_until_it_takes_the_event() -> None:
    calls: list[ThresholdCrossed] = []

    async def flaky(event: ThresholdCrossed) -> None:
        calls.append(event)
        if len(calls) < 3:
            raise ConnectionError("not yet")

    async with AlertDispatcher(callback=flaky, backoff_seconds=0.01) as alerts:
        alerts.offer(COMPANY, 0.8, snapshot())
        await until(lambda: alerts.delivered == 1)
    assert len(calls) == 3 and len({c.event_id for c in calls}) == 1
    assert (alerts.failed, alerts.dropped, alerts.pending) == (0, 0, 0)


async def test_a_full_queue_drops_logs_and_counts(caplog: pytest.LogCaptureFixture) -> None:
    async def never(event: ThresholdCrossed) -> None:
        raise ConnectionError("down")

    alerts = AlertDispatcher(callback=never, queue_size=2, backoff_seconds=10)
    await alerts.start()
    try:
        for _ in range(5):
            alerts.offer(COMPANY, 0.8, snapshot())  # never blocks, never raises
        assert (alerts.pending, alerts.dropped) == (2, 3)
        assert caplog.text.count("alert queue full") == 3
    finally:
        await alerts.aclose(drain_seconds=0)


async def test_a_delivery_is_given_up_after_max_attempts() -> None:
    tries = 0

    async def never(event: ThresholdCrossed) -> None:
        nonlocal tries
        tries += 1
        raise ConnectionError("down")

    async with AlertDispatcher(callback=never, max_attempts=3, backoff_seconds=0.01) as alerts:
        alerts.offer(COMPANY, 1.0, snapshot(1200))
        await until(lambda: alerts.failed == 1)
    assert tries == 3 and alerts.pending == 0


def test_signatures_reject_a_changed_body_and_an_old_timestamp() -> None:
    body = b'{"id":"evt_1"}'
    headers = {
        "X-Budget-Guard-Timestamp": "1700000000",
        "X-Budget-Guard-Signature": sign("s3cret", 1700000000, body),
    }
    assert verify("s3cret", headers, body, now=1700000010)
    assert not verify("s3cret", headers, body + b" ", now=1700000010)
    assert not verify("s3cret", headers, body, now=1700000000 + 301)


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"thresholds": []}, "alerts.thresholds"),
        ({"thresholds": [0.8, 0]}, "alerts.thresholds"),
        ({"thresholds": ["80%"]}, "alerts.thresholds"),
        ({"webhooks": ["ftp://x"], "secret": "s"}, "alerts.webhooks"),
        ({"webhooks": ["https://example.com/hook"]}, "alerts.secret"),
        ({"secret_env": "BG_TEST_UNSET_SECRET"}, "alerts.secret_env"),
        ({"queue_size": 0}, "alerts.queue_size"),
        ({"threshold": [0.8]}, "alerts.threshold"),
    ],
)
def test_a_bad_alerts_table_names_the_key(table: dict[str, object], key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        AlertSettings.from_table(table, env={})


def test_the_secret_comes_from_the_environment_and_never_shows() -> None:
    settings = AlertSettings.from_table(
        {"webhooks": ["https://example.com/hook"], "secret_env": "HOOK_SECRET"},
        env={"HOOK_SECRET": "whsec-abc"},
    )
    assert settings.secret == "whsec-abc" and "whsec-abc" not in repr(settings)
    assert settings.thresholds == (0.8, 0.95, 1.0)
