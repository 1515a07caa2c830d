"""The usage page rendered by a real browser: headless Debian Chromium against real uvicorn.

Chromium reaches the page the way a person does in a host application: it signs in (a session
cookie) and is sent on to the page, whose authenticator is a ``CallableAuthenticator`` reading
that cookie. No key ever appears in a URL.

``.ci/run`` installs ``chromium``; under ``CI=true`` a missing browser fails the test, elsewhere
it skips. Set ``BUDGET_GUARD_USAGE_SCREENSHOT=$PWD/docs/usage-page.png`` to refresh the
screenshot in docs/operating.md from this test.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import shutil
import subprocess
from collections.abc import Mapping
from http.cookies import SimpleCookie
from pathlib import Path

from obs_support import COMPANY_A
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse
from starlette.routing import Route
from test_obs_usage_page import PAGE, Bars
from tests.proxy.servers import serve
from tests.redis_servers import require_tool

from budget_guard.auth import CallableAuthenticator, Identity, Role
from budget_guard.budget.clock import ManualClock
from budget_guard.budget.ledger import Ledger
from budget_guard.budget.policy import BudgetPolicy
from budget_guard.budget.window import Window
from budget_guard.observability import UsagePage
from budget_guard.stores import MemoryStore

NOW = dt.datetime(2024, 5, 20, 15, 0, tzinfo=dt.UTC)
LIMIT = 2_000_000
# A month of one company's traffic: quiet weekends, a busy week, today so far.
DAILY = [
    52_000,
    61_000,
    12_000,
    9_000,
    70_000,
    66_000,
    58_000,
    73_000,
    81_000,
    15_000,
    11_000,
    64_000,
    69_000,
    88_000,
    95_000,
    102_000,
    21_000,
    8_000,
    77_000,
    71_000,
    65_000,
    84_000,
    79_000,
    14_000,
    10_000,
    72_000,
    68_000,
    91_000,
    86_000,
    30_000,
]


def chromium() -> str:
    return shutil.which("chromium-browser") or require_tool("chromium", "chromium")


def run_chromium(binary: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=90, check=True)


async def host_app() -> tuple[Starlette, dict[str, int]]:
    """A host application with its own sign-in, the usage page behind its session."""
    clock = ManualClock()
    window = Window(30)
    ledger = Ledger(
        MemoryStore(window, clock=clock),
        BudgetPolicy(window, default_token_limit=LIMIT, clock=clock),
    )
    expected: dict[str, int] = {}
    for days_ago, tokens in zip(range(len(DAILY), 0, -1), DAILY, strict=True):
        when = NOW - dt.timedelta(days=days_ago - 1, hours=5)
        clock.set(when.timestamp())
        await ledger.record(COMPANY_A, tokens)
        expected[when.date().isoformat()] = tokens
    clock.set(NOW.timestamp())

    session = secrets.token_urlsafe(16)

    async def from_session(headers: Mapping[str, str]) -> Identity | None:
        cookie = SimpleCookie(headers.get("cookie", ""))
        if "session" in cookie and cookie["session"].value == session:
            return Identity("alice", COMPANY_A, Role.USER)
        return None

    async def sign_in(request: Request) -> RedirectResponse:
        response = RedirectResponse(PAGE, status_code=303)
        response.set_cookie("session", session, httponly=True, samesite="strict")
        return response

    page = UsagePage(ledger, CallableAuthenticator(from_session), clock=clock)
    app = Starlette(routes=[Route("/sign-in", sign_in), Route(PAGE, page.endpoint)])
    return app, expected


async def test_chromium_renders_the_bars_of_the_recorded_usage(tmp_path: Path) -> None:
    binary = chromium()
    app, expected = await host_app()
    with serve(app) as url:
        dom = run_chromium(binary, tmp_path / "profile-dom", "--dump-dom", f"{url}/sign-in").stdout
        shot = tmp_path / "usage-page.png"
        run_chromium(
            binary,
            tmp_path / "profile-shot",
            "--hide-scrollbars",
            "--window-size=1000,860",
            f"--screenshot={shot}",
            f"{url}/sign-in",
        )

    assert "Token usage" in dom, dom[:500]
    bars = Bars.of(dom)
    days = bars.per_day()
    assert len(days) == 31
    assert {day: tokens for day, tokens in days.items() if tokens} == expected
    # The drawn heights are the tokens, to one scale (coordinates are rounded to 0.01).
    scales = [
        float(bar["height"]) / int(bar["data-tokens"])
        for bar in bars.bars
        if int(bar["data-tokens"]) > 20_000
    ]
    assert max(scales) / min(scales) < 1.005, scales
    assert [mark.get("data-tokens") for mark in bars.limit] == [str(LIMIT)]
    used = sum(DAILY)
    assert f"{used:,} of {LIMIT:,} tokens" in dom
    assert f'<span class="remaining">{LIMIT - used:,}</span>' in dom

    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    target = os.environ.get("BUDGET_GUARD_USAGE_SCREENSHOT")
    if target:
        shutil.copyfile(shot, target)
