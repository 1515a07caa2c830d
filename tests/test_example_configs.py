"""The configs in examples/ are complete and valid as shipped: each passes every check
``serve`` runs, and the single-process one serves its keys as its comments say."""

from __future__ import annotations

from pathlib import Path

import httpx
import openai
import pytest

from budget_guard.cli import main
from budget_guard.proxy.demo_upstream import create_demo_upstream
from tests.cli.processes import clean_environment, serving
from tests.proxy.servers import serve

EXAMPLES = sorted((Path(__file__).parent.parent / "examples").glob("*.toml"))
ENVIRONMENT = {
    # What each example's header says to export.
    "OPENAI_API_KEY": "sk-example-upstream",
    "ANTHROPIC_API_KEY": "sk-ant-example-upstream",
    "ACME_KEY": "bg-acme-example-0001",
    "ADMIN_KEY": "bg-admin-example-0001",
    "SERVICE_KEY": "bg-service-example-0001",
    "JWT_SECRET": "example-jwt-secret-0123456789abcdef",
}
ACME = "3fa85f64-5717-4562-b3fc-2c963f66afa6"


def test_there_is_an_example_for_each_deployment() -> None:
    assert {path.name for path in EXAMPLES} >= {
        "single-process.toml",
        "redis-workers.toml",
        "redis-cluster.toml",
        "anthropic.toml",
    }


@pytest.mark.parametrize("example", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_each_example_passes_every_check(
    example: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    assert main(["check", "--config", str(example)]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert not any(value in out for value in ENVIRONMENT.values())  # secrets masked


def test_the_single_process_example_serves_as_its_comments_say() -> None:
    example = next(path for path in EXAMPLES if path.name == "single-process.toml")
    with serve(create_demo_upstream()) as upstream:
        env = {**clean_environment(), **ENVIRONMENT, "BUDGET_GUARD_UPSTREAM_URL": upstream}
        with serving("--config", str(example), env=env) as running:
            acme = openai.OpenAI(
                base_url=f"{running.url}/v1", api_key=ENVIRONMENT["ACME_KEY"], max_retries=0
            )
            reply = acme.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
            )
            assert reply.usage is not None
            usage = httpx.get(
                f"{running.url}/assistant/ai-chat/usage",
                params={"CompanyId": ACME},
                headers={"Authorization": f"Bearer {ENVIRONMENT['ADMIN_KEY']}"},
            ).json()
            assert usage["tokensUsed"] == reply.usage.total_tokens
            assert usage["tokenLimit"] == 50_000
