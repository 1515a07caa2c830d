"""The usage page and ``budget-guard usage`` show a company's run-time limit and its alert
thresholds."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from budget_guard.cli import main
from tests.limits.support import COMPANY, LIMITS, admin, config, servers, user

PAGE = "/assistant/ai-chat/usage/ui"


def test_the_usage_page_shows_the_override_and_the_thresholds(redis_url: str) -> None:
    tables = config(redis_url, f"views-{uuid.uuid4().hex[:8]}:", alerts={"thresholds": [0.8, 1]})
    with servers(1, tables) as [url]:
        page = httpx.get(url + PAGE, headers=user()).text
        assert "Alerts at" in page and "80 %, 100 % of the limit" in page
        assert "set at run time" not in page
        httpx.put(
            url + LIMITS, json={"companyId": str(COMPANY), "tokenLimit": 50000}, headers=admin()
        )
        page = httpx.get(url + PAGE, headers=user()).text
        assert "50,000 tokens, set at run time by an admin" in page


def test_budget_guard_usage_shows_them_too(
    redis_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "budget-guard.toml"
    path.write_text(
        f"""
[store]
url = "{redis_url}"
prefix = "views-cli-{uuid.uuid4().hex[:8]}:"

[alerts]
thresholds = [0.5, 0.9]
webhooks = ["https://hooks.example.com/budget"]
secret_env = "BG_TEST_HOOK_SECRET_NOT_SET_HERE"
""",
        encoding="utf-8",
    )
    c = ("--config", str(path), "--company", str(COMPANY))
    assert main(["limits", "set", *c, "--tokens", "1234"]) == 0
    capsys.readouterr()
    assert main(["usage", *c]) == 0
    out = capsys.readouterr().out
    assert "limit       1,234 tokens (run-time, set by an admin)" in out
    assert "alerts at   50 %, 90 % of the limit" in out
