"""``budget-guard usage``: the numbers of the usage page, in the terminal, read from Redis."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import subprocess
import sys
import uuid
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
    # The usage API's names and Guid format, so a script reads the command and the API alike.
    assert report["companyId"] == COMPANY_A.hex
    assert report["tokensUsed"] == 2_000
    assert report["tokenLimit"] == 50_000
    assert report["tokensRemaining"] == 48_000
    assert report["isWithinBudget"] is True and report["freesAt"] is None
    assert report["windowDays"] == 30 and len(report["days"]) == 31
    assert report["days"][-1] == {"date": today(), "tokens": 2_000}
    assert sum(day["tokens"] for day in report["days"]) == 2_000
    assert report["nextRelease"]["tokens"] == 2_000
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
    assert main(["usage", "--config", str(config), "--company", str(COMPANY_A)]) == 0
    out = capsys.readouterr().out
    line = "by kind     input 700 · cached input 512 · output 66 · reasoning 30 (raw tokens)"
    assert line in out
    assert main(["usage", "--config", str(config), "--company", str(COMPANY_B)]) == 0
    assert "by kind" not in capsys.readouterr().out, "company B's usage came with no breakdown"


def test_one_company_in_detail(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["usage", "--config", str(config), "--company", str(COMPANY_B)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Company {COMPANY_B}: OVER BUDGET")
    assert "5,000 of 4,000 tokens" in out
    assert "remaining   0 tokens" in out
    assert "if nothing more is recorded" in out  # when B's budget frees up
    assert f"  {today()}   5,000  {'█' * 30}" in out


def test_one_row_per_company_with_usage_or_a_limit(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    unlisted = uuid.UUID("0f0e0d0c-0b0a-4908-8706-050403020100")  # usage, no [budget.limits]
    ledger = load_settings(config).ledger()

    async def record() -> None:
        try:
            await ledger.record(unlisted, 10)
        finally:
            await ledger.aclose()

    asyncio.run(record())
    assert main(["usage", "--config", str(config)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["company", "used", "limit", "remaining", "%", "frees", "up"]
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == {str(COMPANY_A), str(COMPANY_B), str(unlisted)}
    assert rows[str(COMPANY_A)].split() == [
        str(COMPANY_A),
        "2,000",
        "50,000",
        "48,000",
        "4.0%",
        "-",
    ]
    assert rows[str(COMPANY_B)].split()[1:5] == ["5,000", "4,000", "0", "125.0%"]
    assert "UTC" in rows[str(COMPANY_B)]  # when B's budget frees up
    assert rows[str(unlisted)].split()[1:3] == ["10", "100,000"]
    # Aligned: every row's columns end where the header's do.
    assert len({line.index("%") for line in lines if "%" in line}) == 1


def test_json_list_without_company(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["usage", "--config", str(config), "--json"]) == 0
    reports = json.loads(capsys.readouterr().out)
    by_company = {r["companyId"]: r for r in reports}
    assert by_company[COMPANY_B.hex]["isWithinBudget"] is False
    assert by_company[COMPANY_B.hex]["freesAt"].endswith("Z")


def test_errors_a_person_can_act_on(
    tmp_path: Path, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["usage", "--config", str(config), "--company", "not-a-guid"]) == 2
    assert "--company: 'not-a-guid' is not a company Guid" in capsys.readouterr().err

    memory = tmp_path / "memory.toml"
    memory.write_text('[store]\nurl = "memory://"\n', encoding="utf-8")
    assert main(["usage", "--config", str(memory), "--company", str(COMPANY_A)]) == 2
    assert "lives inside the serving process" in capsys.readouterr().err

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


def test_a_closed_pipe_ends_the_command_quietly(config: Path) -> None:
    done = subprocess.run(
        f"{sys.executable} -m budget_guard.cli usage --config {config} --company {COMPANY_A}"
        " | head -n 1",
        shell=True,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert done.stdout.startswith(f"Company {COMPANY_A}")
