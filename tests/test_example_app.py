"""examples/proxy_app.py, the file users copy, works as written."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import httpx
import openai
import pytest

from budget_guard.proxy.demo_upstream import create_demo_upstream
from tests.proxy.servers import serve

EXAMPLE = Path(__file__).parent.parent / "examples" / "proxy_app.py"


def test_the_example_guards_a_proxy_and_serves_usage(monkeypatch: pytest.MonkeyPatch) -> None:
    with serve(create_demo_upstream()) as upstream:
        monkeypatch.setenv("UPSTREAM_URL", upstream)
        spec = importlib.util.spec_from_file_location("proxy_app_example", EXAMPLE)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
        with serve(module.app) as url:
            client = openai.OpenAI(base_url=f"{url}/v1", api_key="bg-example-key", max_retries=0)
            reply = client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}]
            )
            assert reply.usage is not None
            usage = httpx.get(
                f"{url}/assistant/ai-chat/usage",
                headers={"Authorization": "Bearer bg-example-key"},
            ).json()
            assert usage["tokensUsed"] == reply.usage.total_tokens
            assert usage["tokenLimit"] == 50_000
