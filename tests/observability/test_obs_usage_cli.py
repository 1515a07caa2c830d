"""``budget-guard usage``: the numbers of the usage page, in the terminal, read from Redis."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from obs_support import COMPANY_A, COMPANY_B
from tests.redis_servers import RedisServer

from budget_guard.cli import main
from budget_guard.config import load_settings


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def config(tmp_path: Path, redis: RedisServer) -> Path:
    path = tmp_path / "budget-guard.toml"
    path.write_text(
        f"""
[budget]
default_token_limit = 100000

[budget.limits]
"{COMPANY_A}" = 50000
"{COMPANY_B}" = 4000

[store]
url = "{redis.url}"
prefix = "obs-cli-{tmp_path.name}:"
""",
        encoding="utf-8",
    )
    ledger = load_settings(path).ledger()

    async def record() -> None:
        try:
            await ledger.record(COMPANY_A, 1_234)
            kinds = {"input": 700, "cached_input": 512, "output": 66, "reasoning": 30}
            await ledger.record(COMPANY_A, 766, breakdown=kinds)
            await ledger.record(COMPANY_B, 5_000)
        finally:
            await ledger.aclose()

    asyncio.run(record())
    return path


def today() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()


def test_json_for_one_company(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["usage", "--config", str(config), "--company", str(COMPANY_A), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["company_id"] == str(COMPANY_A)
    assert report["tokens_used"] == 2_000
    assert report["token_limit"] == 50_000
    assert report["tokens_remaining"] == 48_000
    assert report["within_budget"] is True and report["frees_at"] is None
    assert report["window_days"] == 30 and len(report["days"]) == 31
    assert report["days"][-1] == {"date": today(), "tokens": 2_000}
    assert sum(day["tokens"] for day in report["days"]) == 2_000
    assert report["next_release"]["tokens"] == 2_000
    assert report["breakdown"] == {
        "input": 700,
        "cached_input": 512,
        "cache_write": 0,
        "cache_read": 0,
        "output": 66,
        "reasoning": 30,
    }


def test_the_table_shows_the_breakdown_only_where_there_is_one(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["usage", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    line = "by kind     input 700 · cached input 512 · output 66 · reasoning 30 (raw tokens)"
    assert line in out
    assert out.count("by kind") == 1, "company B's usage came with no breakdown"


def test_table_for_every_company_the_config_names(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["usage", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    part_a, part_b = out.split(f"\nCompany {COMPANY_B}")
    assert part_a.startswith(f"Company {COMPANY_A}: within budget")
    assert "used        2,000 of 50,000 tokens (4.0%) in the last 30 days" in part_a
    assert "remaining   48,000 tokens" in part_a
    assert "frees up    now (within budget)" in part_a
    assert f"  {today()}   2,000  {'█' * 30}" in part_a
    assert part_b.startswith(": OVER BUDGET")
    assert "5,000 of 4,000 tokens" in part_b
    assert "remaining   0 tokens" in part_b
    assert "if nothing more is recorded" in part_b  # when B's budget frees up
    assert f"  {today()}   5,000  {'█' * 30}" in part_b


def test_json_list_without_company(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["usage", "--config", str(config), "--json"]) == 0
    reports = json.loads(capsys.readouterr().out)
    by_company = {r["company_id"]: r for r in reports}
    assert by_company[str(COMPANY_B)]["within_budget"] is False
    assert by_company[str(COMPANY_B)]["frees_at"].endswith("Z")


def test_errors_a_person_can_act_on(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["usage", "--config", str(config), "--company", "not-a-guid"]) == 2
    assert "--company: 'not-a-guid' is not a company Guid" in capsys.readouterr().err

    memory = tmp_path / "memory.toml"
    memory.write_text('[store]\nurl = "memory://"\n', encoding="utf-8")
    assert main(["usage", "--config", str(memory), "--company", str(COMPANY_A)]) == 2
    assert "lives inside the serving process" in capsys.readouterr().err

    unnamed = tmp_path / "unnamed.toml"
    unnamed.write_text('[store]\nurl = "redis://127.0.0.1:1/0"\n', encoding="utf-8")
    assert main(["usage", "--config", str(unnamed)]) == 2
    assert "name a company with --company ID" in capsys.readouterr().err

    down = tmp_path / "down.toml"
    down.write_text(
        '[store]\nurl = "redis://user:hunter2-secret@127.0.0.1:1/0"\n', encoding="utf-8"
    )
    assert main(["usage", "--config", str(down), "--company", str(COMPANY_A)]) == 2
    err = capsys.readouterr().err
    assert "does not answer" in err and "hunter2-secret" not in err


def test_the_console_command(config: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "budget_guard.cli",
            "usage",
            "--config",
            str(config),
            "--company",
            str(COMPANY_B),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"Company {COMPANY_B}: OVER BUDGET")
