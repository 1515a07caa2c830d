"""The official openai SDK, pointed at the proxy, gets exactly what the upstream gives."""

from __future__ import annotations

import openai
import pytest

from tests.proxy.conftest import CLIENT_KEY

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
