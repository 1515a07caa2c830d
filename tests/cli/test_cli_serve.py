"""The ``budget-guard`` command, run for real in a subprocess and driven by the OpenAI SDK."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import openai
import pytest

from budget_guard.proxy.demo_upstream import create_demo_upstream
from tests.proxy.servers import serve
from tests.redis_servers import RedisServer, free_port

from .processes import clean_environment, run_once, serving

COMPANY = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
KEY = "bg-live-company-a"
CHAT = [{"role": "user", "content": "Hello there"}]


def write_config(tmp_path: Path, upstream: str, *, limit: int = 1_000_000, extra: str = "") -> Path:
    path = tmp_path / "budget-guard.toml"
    path.write_text(
        f"""
[budget]
window_days = 30
default_token_limit = 1000000
[budget.limits]
"{COMPANY}" = {limit}

[store]
url = "memory://"

[proxy]
upstream_url = "{upstream}"
upstream_api_key = "sk-upstream-never-shown"

[[auth.api_keys]]
key = "{KEY}"
company_id = "{COMPANY}"
role = "user"
{extra}
"""
    )
    return path


@pytest.fixture(scope="module")
def upstream() -> object:
    with serve(create_demo_upstream()) as url:
        yield url


def test_serve_guards_the_proxy_and_serves_the_usage_endpoint(
    tmp_path: Path, upstream: str
) -> None:
    config = write_config(tmp_path, upstream, limit=60)
    with serving("--config", str(config)) as running:
        assert any("listening on" in line for line in running.banner)
        assert not any("sk-upstream-never-shown" in line for line in running.banner)
        client = openai.OpenAI(base_url=f"{running.url}/v1", api_key=KEY, max_retries=0)
        reply = client.chat.completions.create(model="gpt-4o-mini", messages=CHAT)
        assert reply.usage is not None
        usage = httpx.get(
            f"{running.url}/assistant/ai-chat/usage", headers={"Authorization": f"Bearer {KEY}"}
        ).json()
        assert usage["tokensUsed"] == reply.usage.total_tokens
        assert usage["tokenLimit"] == 60
        streamed = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=CHAT,
            stream=True,
            stream_options={"include_usage": True},
        )
        total = usage["tokensUsed"]
        for chunk in streamed:
            if chunk.usage:
                total += chunk.usage.total_tokens
        with pytest.raises(openai.RateLimitError) as refused:
            client.chat.completions.create(model="gpt-4o-mini", messages=CHAT)
        assert refused.value.code == "token_budget_exceeded"
        assert refused.value.response.headers["x-budget-tokens-used"] == str(total)


def test_demo_runs_with_no_config_and_prints_a_key() -> None:
    with serving("--demo", env={"BUDGET_GUARD_CONFIG": ""}) as running:
        key_lines = [line for line in running.banner if "demo key:" in line]
        assert key_lines, running.banner
        key = key_lines[0].split("demo key:")[1].split()[0]
        client = openai.OpenAI(base_url=f"{running.url}/v1", api_key=key, max_retries=0)
        reply = client.chat.completions.create(model="gpt-4o-mini", messages=CHAT)
        assert reply.choices[0].message.content
        assert any("memory://" in line for line in running.banner)


def test_several_workers_on_the_memory_store_are_refused() -> None:
    code, output = run_once("serve", "--workers", "2", "--demo")
    assert code != 0
    assert "redis" in output.lower() and "Traceback" not in output


def test_several_workers_share_one_budget_on_redis(tmp_path: Path, upstream: str) -> None:
    with RedisServer() as redis:
        config = write_config(tmp_path, upstream)
        text = config.read_text().replace('url = "memory://"', f'url = "{redis.url}"')
        config.write_text(text)
        with serving("--config", str(config), "--workers", "2") as running:
            client = openai.OpenAI(base_url=f"{running.url}/v1", api_key=KEY, max_retries=0)
            spent = 0
            for _ in range(12):  # spread over both workers by the kernel
                with openai.OpenAI(
                    base_url=f"{running.url}/v1", api_key=KEY, max_retries=0
                ) as fresh:
                    reply = fresh.chat.completions.create(model="gpt-4o-mini", messages=CHAT)
                    assert reply.usage is not None
                    spent += reply.usage.total_tokens
            usage = httpx.get(
                f"{running.url}/assistant/ai-chat/usage",
                headers={"Authorization": f"Bearer {KEY}"},
            ).json()
            assert usage["tokensUsed"] == spent
            client.close()


@pytest.mark.parametrize(
    ("toml", "names"),
    [
        ("[budget]\nwindow_days = 0\n", "budget.window_days"),
        ('[store]\nurl = "postgres://x"\n', "store.url"),
        ("[[auth.api_keys]]\nkey = 'k'\ncompany_id = 'nope'\n", "auth.api_keys"),
        ("[guard]\non_store_error = 'maybe'\n", "guard.on_store_error"),
        ("[proxy]\nupstream_url = 'ftp://x'\n", "proxy.upstream_url"),
        ("[alerts]\nwebhooks = ['https://x/hook']\n", "alerts.secret"),
    ],
)
def test_a_bad_config_is_one_clear_line(tmp_path: Path, toml: str, names: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(toml)
    code, output = run_once("serve", "--config", str(path))
    assert code == 2
    assert names in output
    assert "Traceback" not in output


def test_a_redis_that_does_not_answer_is_one_clear_line(tmp_path: Path) -> None:
    path = tmp_path / "redis.toml"
    path.write_text(f'[store]\nurl = "redis://127.0.0.1:{free_port()}/0"\n')
    code, output = run_once("serve", "--config", str(path), "--demo")
    assert code == 2
    assert "does not answer" in output and "Traceback" not in output


def test_a_port_in_use_is_one_clear_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, output = run_once("serve", "--demo", "--port", str(port))
    assert code == 2
    assert "already in use" in output and "Traceback" not in output


def test_the_listening_socket_says_it_is_tcp() -> None:
    # asyncio sets TCP_NODELAY only on sockets created as IPPROTO_TCP; without it every
    # kept-alive response waited ~40 ms for a delayed ACK (the workers' socket too).
    from budget_guard.cli.command import _bind

    sock = _bind("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()


def test_the_banner_lists_every_url_and_each_one_answers() -> None:
    with serving("--demo", env=clean_environment()) as running:
        start = running.banner.index("  serving:")
        served = {}
        for line in running.banner[start + 1 :]:
            if not line.startswith("    "):
                break
            name, url = line.split("http", 1)
            served[name.strip()] = "http" + url
        assert set(served) == {
            "proxy",
            "usage API",
            "OpenAPI",
            "usage page",
            "metrics",
            "health",
            "ready",
        }
        key = next(line for line in running.banner if "demo key:" in line).split()[2]
        for name, url in served.items():
            if name == "proxy":
                continue
            status = httpx.get(url, headers={"Authorization": f"Bearer {key}"}).status_code
            assert status == 200, (name, url, status)
