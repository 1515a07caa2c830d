"""Models map to encodings as tiktoken maps them, without any download for the shipped ones."""

from __future__ import annotations

import logging

import orjson
import pytest
from tiktoken.model import MODEL_PREFIX_TO_ENCODING, MODEL_TO_ENCODING

from budget_guard.counting import TokenCounter
from budget_guard.counting.encoding_lookup import (
    SERVED_ENCODINGS,
    encoding_for_model,
    encoding_name_for_model,
    get_encoding,
)
from budget_guard.encodings import SHIPPED_ENCODINGS


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
        ("code-davinci-edit-001", "p50k_edit"),
        ("davinci", "r50k_base"),
        ("gpt2", "gpt2"),
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


def test_every_encoding_tiktoken_maps_a_model_to_is_shipped() -> None:
    """Whatever model name arrives, its encoding is built from a file in the package."""
    mapped = set(MODEL_TO_ENCODING.values()) | set(MODEL_PREFIX_TO_ENCODING.values())
    assert mapped <= SERVED_ENCODINGS
    for name in mapped:
        assert get_encoding(name).name in SHIPPED_ENCODINGS


@pytest.mark.parametrize(
    ("model", "text", "tokens"),
    [
        # GPT-2's ids, as tiktoken's own test_simple_public asserts for "gpt2".
        ("gpt2", "hello world", [31373, 995]),
        ("davinci", "hello world", [31373, 995]),
        ("text-davinci-003", "hello world", [31373, 995]),
        ("code-davinci-edit-001", "hello world", [31373, 995]),
    ],
)
def test_legacy_models_count_with_their_own_shipped_tables(
    model: str, text: str, tokens: list[int]
) -> None:
    assert encoding_for_model(model).encode_ordinary(text) == tokens


def test_p50k_models_get_its_whitespace_tokens_and_r50k_models_do_not() -> None:
    """p50k_base is r50k_base plus 24 tokens for runs of spaces (its vocabulary is 50281)."""
    assert len(encoding_for_model("text-davinci-003").encode_ordinary("    x")) == 2
    assert len(encoding_for_model("davinci").encode_ordinary("    x")) == 4


def test_an_encoding_a_newer_tiktoken_might_name_is_counted_with_the_default(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Never a download: a model tiktoken maps to a table budget-guard lacks uses the default."""
    monkeypatch.setitem(MODEL_TO_ENCODING, "gpt-99-test", "o999k_base")
    encoding_name_for_model.cache_clear()
    with caplog.at_level(logging.WARNING, logger="budget_guard.counting.encoding_lookup"):
        assert encoding_name_for_model("gpt-99-test") == "o200k_base"
    encoding_name_for_model.cache_clear()
    assert "'o999k_base', which budget-guard does not ship" in caplog.text


def test_a_default_encoding_that_is_not_shipped_is_refused_at_configuration() -> None:
    with pytest.raises(ValueError, match="Unknown encoding 'o999k_base'"):
        TokenCounter(default_encoding="o999k_base")
    assert TokenCounter(default_encoding="p50k_edit")
