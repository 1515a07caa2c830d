"""The official openai SDK, pointed at the proxy, gets exactly what the upstream gives."""

from __future__ import annotations

import asyncio
import uuid

import openai
import pytest

from budget_guard.app import build_app
from budget_guard.budget.window import ConfigError
from budget_guard.config import settings_from_mapping
from budget_guard.proxy.settings import ProxySettings
from tests.proxy.conftest import CLIENT_KEY
from tests.proxy.servers import serve

MESSAGES = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "What is a token budget?"},
]


@pytest.fixture
def via_proxy(demo_proxy_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{demo_proxy_url}/v1", api_key=CLIENT_KEY, max_retries=0)


@pytest.fixture
def direct(demo_upstream_url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{demo_upstream_url}/v1", api_key="unused", max_retries=0)


def test_chat_completion(via_proxy: openai.OpenAI, direct: openai.OpenAI) -> None:
    proxied = via_proxy.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
    expected = direct.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
    assert proxied.choices[0].message.content == expected.choices[0].message.content
    assert "You sent 2 messages" in (proxied.choices[0].message.content or "")
    assert proxied.usage == expected.usage


@pytest.mark.parametrize("include_usage", [True, False])
def test_chat_completion_stream(via_proxy: openai.OpenAI, include_usage: bool) -> None:
    stream = via_proxy.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,  # type: ignore[arg-type]
        stream=True,
        stream_options={"include_usage": include_usage},
    )
    chunks = list(stream)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert "You sent 2 messages" in text
    usage_chunks = [chunk for chunk in chunks if chunk.usage is not None]
    if include_usage:
        assert len(usage_chunks) == 1
        assert usage_chunks[0] is chunks[-1]
        assert usage_chunks[0].choices == []
    else:
        assert usage_chunks == []


def test_responses_api_streaming_and_not(via_proxy: openai.OpenAI, direct: openai.OpenAI) -> None:
    plain = via_proxy.responses.create(model="gpt-4o", input="Hi", instructions="Be brief.")
    assert plain.output_text.startswith("Hello from the budget-guard demo upstream.")
    assert (
        plain.usage
        == direct.responses.create(model="gpt-4o", input="Hi", instructions="Be brief.").usage
    )
    with via_proxy.responses.stream(model="gpt-4o", input="Hi", instructions="Be brief.") as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == plain.output_text
    assert final.usage == plain.usage


def test_completions_embeddings_and_models(via_proxy: openai.OpenAI, direct: openai.OpenAI) -> None:
    completion = via_proxy.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hi")
    assert (
        completion.usage
        == direct.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say hi").usage
    )
    embeddings = via_proxy.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    expected = direct.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert [item.embedding for item in embeddings.data] == [
        item.embedding for item in expected.data
    ]
    assert embeddings.usage == expected.usage
    assert "gpt-4o-mini" in [model.id for model in via_proxy.models.list()]


async def test_the_command_forwards_to_a_base_that_is_not_host_v1(demo_upstream_url: str) -> None:
    """``[proxy] strip_prefix = "/v1"`` with an upstream base of ``<host>/v1`` (as Gemini's
    ``.../v1beta/openai`` or Azure's ``.../openai/v1``): the guarded app as the command builds
    it answers the SDK, and the usage is charged."""
    company = uuid.UUID("3fa85f64-5717-4562-b3fc-2c963f66afa6")
    settings = settings_from_mapping(
        {
            "proxy": {"strip_prefix": "/v1", "transport": "httpx"},
            "auth": {"api_keys": [{"key": CLIENT_KEY, "company_id": str(company)}]},
        }
    )
    ledger = settings.ledger()
    app = build_app(settings, upstream_url=f"{demo_upstream_url}/v1", ledger=ledger)
    with serve(app) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=CLIENT_KEY, max_retries=0)
        reply = await asyncio.to_thread(
            client.chat.completions.create,
            model="gpt-4o-mini",
            messages=MESSAGES,  # type: ignore[arg-type]
        )
    assert reply.usage is not None
    assert (await ledger.snapshot(company)).tokens_used == reply.usage.total_tokens


def test_strip_prefix_is_checked_in_config() -> None:
    for bad in ("v1", "/v1/", 1):
        with pytest.raises(ConfigError, match=r"proxy\.strip_prefix"):
            ProxySettings.from_table({"strip_prefix": bad})
    assert ProxySettings.from_table({"strip_prefix": "/v1"}).strip_prefix == "/v1"
