"""``budget-guard limits``: the same run-time limits as the admin API, from a terminal."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from budget_guard.cli import main

COMPANY = uuid.UUID("3fa85f64-5717-4562-b3fc-2c963f66afa6")


@pytest.fixture
def config(tmp_path: Path, redis_url: str) -> Path:
    path = tmp_path / "budget-guard.toml"
    path.write_text(
        f"""
[budget]
default_token_limit = 1000

[budget.limits]
"{COMPANY}" = 2000

[store]
url = "{redis_url}"
prefix = "limits-cli-{uuid.uuid4().hex[:8]}:"
""",
        encoding="utf-8",
    )
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_set_get_list_clear(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    c = ("--config", str(config), "--company", str(COMPANY))
    assert run(capsys, "limits", "get", *c)[1] == (
        f"Company {COMPANY}: 2,000 tokens ([budget.limits])\n"
    )
    status, out, _ = run(capsys, "limits", "set", *c, "--tokens", "50000")
    assert status == 0
    assert out == (
        f"Company {COMPANY}: 50,000 tokens (run-time limit) (the run-time limit before: none)\n"
    )
    listed = run(capsys, "limits", "list", "--config", str(config), "--json")[1]
    assert json.loads(listed) == [{"company_id": str(COMPANY), "token_limit": 50000}]
    cleared = json.loads(run(capsys, "limits", "clear", *c, "--json")[1])
    assert cleared == {
        "company_id": str(COMPANY),
        "token_limit": 2000,
        "override": None,
        "source": "config",
        "previous_override": 50000,
    }
    assert "No run-time limits" in run(capsys, "limits", "list", "--config", str(config))[1]


def test_mistakes_are_one_line_and_status_2(
    config: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    status, _, err = run(
        capsys, "limits", "set", "--config", str(config), "--company", "acme", "--tokens", "5"
    )
    assert (status, err) == (2, "budget-guard: --company: 'acme' is not a company Guid\n")
    c = ("--config", str(config), "--company", str(COMPANY))
    status, _, err = run(capsys, "limits", "set", *c, "--tokens", "-5")
    assert status == 2 and "--tokens" in err
    memory = tmp_path / "memory.toml"
    memory.write_text("[store]\nurl = 'memory://'\n", encoding="utf-8")
    status, _, err = run(capsys, "limits", "list", "--config", str(memory))
    assert status == 2 and "admin API" in err
