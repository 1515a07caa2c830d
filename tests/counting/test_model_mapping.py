"""Models map to encodings as tiktoken maps them, without any download for the shipped ones."""

from __future__ import annotations

import logging

import orjson
import pytest
import tiktoken

from budget_guard.counting import TokenCounter
from budget_guard.counting.encoding_lookup import encoding_name_for_model, get_encoding


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("gpt-4o", "o200k_base"),
        ("gpt-4o-2024-08-06", "o200k_base"),
        ("gpt-4o-mini", "o200k_base"),
        ("o1", "o200k_base"),
        ("o3-mini-2025-01-31", "o200k_base"),
        ("gpt-4.1-nano", "o200k_base"),
        ("gpt-5", "o200k_base"),
        ("ft:gpt-4o-mini-2024-07-18:acme::abc123", "o200k_base"),
        ("gpt-4", "cl100k_base"),
        ("gpt-4-0613", "cl100k_base"),
        ("gpt-4-turbo-2024-04-09", "cl100k_base"),
        ("gpt-3.5-turbo-0125", "cl100k_base"),
        ("gpt-35-turbo", "cl100k_base"),
        ("ft:gpt-3.5-turbo-0613:acme::xyz", "cl100k_base"),
        ("text-embedding-3-large", "cl100k_base"),
        ("openai/gpt-4", "cl100k_base"),  # a router's provider prefix
        ("gpt-oss-120b", "o200k_harmony"),
        ("text-davinci-003", "p50k_base"),
        ("claude-sonnet-4-20250514", "o200k_base"),  # unknown: the default
        ("my-local-llama", "o200k_base"),
        (None, "o200k_base"),
    ],
)
def test_model_to_encoding(model: str | None, encoding: str) -> None:
    assert encoding_name_for_model(model) == encoding


def test_configurable_default_encoding() -> None:
    counter = TokenCounter(default_encoding="cl100k_base")
    body = orjson.dumps(
        {"model": "my-local-llama", "messages": [{"role": "user", "content": "お誕生日おめでとう"}]}
    )
    # OpenAI's cookbook: cl100k_base encodes this in 9 tokens, o200k_base in 8.
    assert counter.count_request("/v1/chat/completions", body).input_tokens == 3 + 1 + 9 + 3
    assert TokenCounter().count_request("/v1/chat/completions", body).input_tokens == 3 + 1 + 8 + 3


def test_harmony_models_count_with_the_shipped_o200k() -> None:
    assert get_encoding("o200k_harmony") is get_encoding("o200k_base")


def test_unloadable_encoding_falls_back_to_nearest_shipped_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []

    def offline(name: str) -> tiktoken.Encoding:
        calls.append(name)
        raise ConnectionError("no network")

    monkeypatch.setattr(tiktoken, "get_encoding", offline)
    monkeypatch.setattr("budget_guard.counting.encoding_lookup._other_encodings", {})
    with caplog.at_level(logging.WARNING, logger="budget_guard.counting.encoding_lookup"):
        first = get_encoding("p50k_base")
        second = get_encoding("p50k_base")
    assert first is second is get_encoding("cl100k_base")
    assert calls == ["p50k_base"]
    assert [record.getMessage() for record in caplog.records] == [
        "tiktoken could not load encoding 'p50k_base' (no network); "
        "counting with the shipped 'cl100k_base' instead"
    ]


def test_unknown_default_encoding_fails_at_configuration() -> None:
    with pytest.raises(ValueError, match="Unknown encoding"):
        TokenCounter(default_encoding="no_such_encoding")
