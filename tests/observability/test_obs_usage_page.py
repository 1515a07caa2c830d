"""The usage page: who may see it, and that its numbers and bars are the recorded usage."""

from __future__ import annotations

import datetime as dt
import re
from uuid import UUID

import httpx
from obs_support import (
    ADMIN_KEY,
    COMPANY_A,
    COMPANY_B,
    KEY_A,
    KEY_B,
    PAGE,
    Bars,
    authenticator,
    bearer,
    guarded_app,
)
from starlette.applications import Starlette
from starlette.routing import Route
from tests.proxy.servers import serve

from budget_guard.budget.clock import ManualClock
from budget_guard.budget.ledger import Ledger
from budget_guard.budget.policy import BudgetPolicy
from budget_guard.budget.window import Window
from budget_guard.observability import UsagePage
from budget_guard.observability.report import format_time
from budget_guard.stores import MemoryStore

NOW = dt.datetime(2024, 5, 20, 10, 0, tzinfo=dt.UTC)


async def record_history(
    ledger: Ledger, clock: ManualClock, company: UUID, usage: list[tuple[dt.datetime, int]]
) -> dict[str, int]:
    """Record ``usage`` at its times (in order, as time passes) and leave the clock at NOW;
    returns the expected tokens per UTC day."""
    expected: dict[str, int] = {}
    for when, tokens in sorted(usage):
        clock.set(when.timestamp())
        await ledger.record(company, tokens)
        day = when.date().isoformat()
        expected[day] = expected.get(day, 0) + tokens
    clock.set(NOW.timestamp())
    return expected


def ledger_at(limit: int) -> tuple[Ledger, ManualClock]:
    clock = ManualClock(NOW.timestamp())
    window = Window(30)
    store = MemoryStore(window, clock=clock)
    return Ledger(store, BudgetPolicy(window, default_token_limit=limit, clock=clock)), clock


def page_app(ledger: Ledger, clock: ManualClock) -> Starlette:
    return Starlette(routes=[Route(PAGE, UsagePage(ledger, authenticator(), clock=clock).endpoint)])


HISTORY = [
    (NOW - dt.timedelta(days=20), 40_000),
    (NOW - dt.timedelta(days=7, hours=3), 120_000),
    (NOW - dt.timedelta(days=1), 15_000),
    (NOW.replace(hour=0, minute=30), 25_000),  # two buckets of the same day add up
    (NOW, 35_000),
]


async def get(app: Starlette, path: str, headers: dict[str, str] | None = None) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://page") as client:
        return await client.get(path, headers=headers)


async def test_the_page_shows_a_bar_per_day_with_the_recorded_tokens() -> None:
    ledger, clock = ledger_at(limit=500_000)
    expected = await record_history(ledger, clock, COMPANY_A, HISTORY)
    reply = await get(page_app(ledger, clock), PAGE, bearer(KEY_A))
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/html")
    assert "script-src" not in reply.headers["content-security-policy"]
    bars = Bars.of(reply.text)
    days = bars.per_day()
    # Every day of the rolling window has its bar: 2024-04-20 (the oldest live bucket's day)
    # through today.
    assert len(days) == 31
    assert min(days) == "2024-04-20" and max(days) == "2024-05-20"
    assert {day: tokens for day, tokens in days.items() if tokens} == expected
    assert expected["2024-05-20"] == 60_000
    assert [mark.get("data-tokens") for mark in bars.limit] == ["500000"]
    assert "235,000 of 500,000 tokens (47.0%)" in reply.text
    assert '<span class="remaining">265,000</span>' in reply.text
    assert "now: within budget" in reply.text
    # The oldest usage (20 days ago, 6-hour buckets) stops counting 30 days after its bucket.
    assert "40,000 tokens stop counting at 2024-05-30 12:00 UTC" in reply.text


async def test_over_budget_the_page_says_when_budget_frees_up() -> None:
    ledger, clock = ledger_at(limit=100_000)
    await record_history(ledger, clock, COMPANY_A, HISTORY)
    snapshot = await ledger.snapshot(COMPANY_A)
    assert snapshot.frees_at is not None
    reply = await get(page_app(ledger, clock), PAGE, bearer(KEY_A))
    assert "over budget" in reply.text
    assert '<span class="remaining">0</span>' in reply.text
    assert f"{format_time(snapshot.frees_at)} (in " in reply.text
    # Far over the limit, the limit is still drawn, and the part of the bars above it is red.
    bars = Bars.of(reply.text)
    assert [mark.get("class") for mark in bars.limit] == ["limit"]
    assert 'class="over"' in reply.text


async def test_far_under_the_limit_the_bars_stay_readable() -> None:
    ledger, clock = ledger_at(limit=100_000_000)
    await record_history(ledger, clock, COMPANY_A, HISTORY)
    reply = await get(page_app(ledger, clock), PAGE, bearer(KEY_A))
    bars = Bars.of(reply.text)
    # The axis follows the usage and the limit is named above it, not drawn at 0.2 % height.
    assert [mark.get("class") for mark in bars.limit] == ["limit-label off-scale"]
    assert "limit 100,000,000 ↑ above this scale" in reply.text
    top_of_stack = min(float(bar["y"]) for bar in bars.bars)
    assert top_of_stack < 340 / 4  # the stack fills the chart


async def test_who_may_see_which_company() -> None:
    ledger, clock = ledger_at(limit=500_000)
    await record_history(ledger, clock, COMPANY_B, [(NOW, 7_000)])
    app = page_app(ledger, clock)

    anonymous = await get(app, PAGE)
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")

    mine = await get(app, PAGE, bearer(KEY_B))
    assert mine.status_code == 200 and str(COMPANY_B) in mine.text
    assert "7,000 of 500,000" in mine.text
    assert 'name="CompanyId"' not in mine.text  # users get no picker

    other = await get(app, f"{PAGE}?CompanyId={COMPANY_A}", bearer(KEY_B))
    assert other.status_code == 403

    picker = await get(app, PAGE, bearer(ADMIN_KEY))
    assert picker.status_code == 200
    assert 'name="CompanyId"' in picker.text and "<svg" not in picker.text

    chosen = await get(app, f"{PAGE}?companyid={COMPANY_B}", bearer(ADMIN_KEY))
    assert chosen.status_code == 200 and "7,000 of 500,000" in chosen.text

    bad = await get(app, f"{PAGE}?CompanyId=not-a-guid", bearer(ADMIN_KEY))
    assert bad.status_code == 400
    assert "?key=" not in chosen.text  # never offers to take a key in the URL


async def test_the_guarded_app_serves_the_page_beside_the_usage_endpoint(upstream_url: str) -> None:
    with serve(guarded_app(upstream_url)) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            page = await client.get(PAGE, headers=bearer(KEY_A))
            api = await client.get(
                "/assistant/ai-chat/usage", headers={**bearer(KEY_A), "Accept": "application/json"}
            )
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert len(Bars.of(page.text).bars) >= 30
    assert api.status_code == 200 and api.headers["content-type"].startswith("application/json")
    assert re.search(r'"tokensUsed"\s*:\s*0', api.text)


async def test_the_page_shows_the_raw_tokens_by_kind_in_the_window() -> None:
    ledger, clock = ledger_at(limit=500_000)
    await ledger.record(
        COMPANY_A, 4_628, breakdown={"input": 10_000, "cached_input": 8_192, "output": 500}
    )
    reply = await get(page_app(ledger, clock), PAGE, bearer(KEY_A))
    assert "<dt>By kind</dt>" in reply.text
    assert "input 10,000 · cached input 8,192 · output 500 (raw tokens)" in reply.text
    assert "4,628 of 500,000 tokens" in reply.text
    await record_history(ledger, clock, COMPANY_B, [(NOW, 7_000)])
    other = await get(page_app(ledger, clock), PAGE, bearer(KEY_B))
    assert "By kind" not in other.text, "no breakdown recorded, none shown"


async def test_the_limit_label_sits_on_no_bar() -> None:
    """Over the limit the last columns rise past the limit line; the label stays clear."""
    ledger, clock = ledger_at(limit=100_000)
    await record_history(ledger, clock, COMPANY_A, HISTORY)
    reply = await get(page_app(ledger, clock), PAGE, bearer(KEY_A))
    label = re.search(
        r'<text class="limit-label" x="([\d.]+)" y="([\d.]+)"[^>]*>([^<]*)</text>', reply.text
    )
    assert label is not None
    x, y, text = float(label.group(1)), float(label.group(2)), label.group(3)
    # The label's box at 13 px (at most 8 px a character, 13 px tall above its baseline).
    left, right, top, bottom = x, x + 8 * len(text), y - 13, y + 3
    shapes = re.findall(
        r'<rect class="(?:bar|before|over)"[^>]* x="([\d.]+)" y="([\d.]+)" '
        r'width="([\d.]+)" height="([\d.]+)"',
        reply.text,
    )
    assert shapes
    for sx, sy, sw, sh in ((float(v) for v in shape) for shape in shapes):
        overlaps = sx < right and sx + sw > left and sy < bottom and sy + sh > top
        assert not overlaps, (text, (left, right, top, bottom), (sx, sy, sw, sh))
