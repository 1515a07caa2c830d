"""The server's clock jumping back or forward (NTP step, VM resume, a wrong clock fixed):
through the usage endpoint and the proxy path, usage is never lost and never counted twice.

A jump back writes new usage into the newest bucket already seen, so nothing recorded
"in the past" expires before what was recorded earlier; a jump forward within the window
loses nothing; only a jump past the window expires usage, and then only the usage that is
truly older than the window. Idempotent retries stay retries across the jumps.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from budget_guard.app import build_app
from budget_guard.auth import ApiKey, ApiKeyAuthenticator
from budget_guard.budget.clock import ManualClock
from budget_guard.budget.ledger import Ledger
from budget_guard.budget.policy import BudgetPolicy
from budget_guard.budget.window import Window
from budget_guard.config import settings_from_mapping
from budget_guard.proxy.demo_upstream import create_demo_upstream
from budget_guard.stores import MemoryStore, RedisStore, UsageStore
from tests.proxy.servers import serve

from .support import CHAT_PATH, USAGE_PATH

DAY = 86_400.0
T0 = 1_700_000_000.0 + 1234.5  # mid-bucket, as real traffic is
COMPANY = uuid.uuid4()
KEY = "bg-clock-company"
AUTH = {"Authorization": f"Bearer {KEY}"}
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "What time is it?"}]}
WINDOW = Window(30)


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    with serve(create_demo_upstream()) as url:
        yield url


@pytest.fixture(params=["memory", "redis"])
def store_and_clock(
    request: pytest.FixtureRequest,
) -> tuple[UsageStore, ManualClock]:
    clock = ManualClock(T0)
    if request.param == "memory":
        return MemoryStore(WINDOW, clock=clock), clock
    url = request.getfixturevalue("redis_url")
    prefix = f"clock-{uuid.uuid4().hex[:8]}:"
    return RedisStore.from_url(url, WINDOW, clock=clock, prefix=prefix), clock


class Client:
    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def record(self, tokens: int, key: str | None = None) -> httpx.Response:
        headers = {**AUTH, **({"Idempotency-Key": key} if key else {})}
        answer = self.http.post(USAGE_PATH, headers=headers, json={"tokensUsed": tokens})
        assert answer.status_code == 200, answer.text
        return answer

    def chat(self) -> int:
        answer = self.http.post(CHAT_PATH, headers=AUTH, json=CHAT)
        assert answer.status_code == 200, answer.text
        return int(answer.json()["usage"]["total_tokens"])

    def used(self) -> int:
        answer = self.http.get(USAGE_PATH, headers=AUTH)
        assert answer.status_code == 200, answer.text
        return int(answer.json()["tokensUsed"])


def test_clock_jumps_neither_lose_nor_double_count_usage(
    upstream: str, store_and_clock: tuple[UsageStore, ManualClock]
) -> None:
    store, clock = store_and_clock
    ledger = Ledger(store, BudgetPolicy(WINDOW, default_token_limit=10_000_000))
    app = build_app(
        settings_from_mapping({}),
        upstream_url=upstream,
        ledger=ledger,
        authenticator=ApiKeyAuthenticator([ApiKey(KEY, COMPANY, name="clock")]),
    )
    with serve(app) as url, httpx.Client(base_url=url, timeout=15) as http:
        c = Client(http)
        first = c.record(100, key="turn-1").json()["tokensUsed"]
        early = 100 + c.chat()
        assert first == 100 and c.used() == early

        clock.set(T0 - 3 * DAY)  # back three days
        assert c.used() == early, "nothing lost by going back"
        retry = c.record(100, key="turn-1")
        assert retry.headers["idempotent-replayed"] == "true", "a retry is still a retry"
        c.record(200)
        early += 200 + c.chat()
        assert c.used() == early, "recorded while the clock was behind"

        clock.set(T0 + 20 * DAY)  # forward, within the window
        assert c.used() == early, "nothing lost by going forward within the window"
        late = 50 + c.chat()
        c.record(50, key="turn-3")

        clock.set(T0 - 5 * DAY)  # back again, past where it ever was
        assert c.used() == early + late
        assert c.record(50, key="turn-3").headers["idempotent-replayed"] == "true"
        late += 60
        c.record(60)
        assert c.used() == early + late, "nothing counted twice, nothing lost"

        clock.set(T0 + 29 * DAY)
        assert c.used() == early + late, "everything still inside the window"

        # Past the window of the first bucket: what was recorded at T0, and while the clock
        # was behind T0, expires; what was recorded after the clock had reached T0 + 20 days
        # (even if the clock later went back) stays, for a full window from then.
        clock.set(T0 + WINDOW.seconds + WINDOW.bucket_seconds)
        assert c.used() == late

        clock.set(T0 + 20 * DAY + WINDOW.seconds + WINDOW.bucket_seconds)
        assert c.used() == 0
