"""What a request may generate, as strict mode holds it: the largest output cap it names (an
upstream may read either), times every output it asks for (each prompt of a list too)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from budget_guard.counting import TokenCounter

MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    ("caps", "expected"),
    [
        ({"max_completion_tokens": 1, "max_tokens": 100_000}, 100_000),  # Ollama reads this one
        ({"max_completion_tokens": 500, "max_tokens": 10}, 500),
        ({"max_tokens": 7}, 7),
        ({}, None),
    ],
)
def test_a_chat_is_held_at_the_largest_cap_it_names(
    counter: TokenCounter, caps: dict[str, int], expected: int | None
) -> None:
    body = orjson.dumps({"model": "gpt-4o-mini", "messages": MESSAGES, **caps})
    assert counter.count_request("/v1/chat/completions", body).max_output_tokens == expected


@pytest.mark.parametrize(
    ("prompt", "choices"),
    [
        ("one prompt", 2),
        (["a", "b", "c"], 6),  # answered prompt by prompt
        ([[1, 2], [3, 4]], 4),  # token lists, one per prompt
        ([1, 2, 3], 2),  # one prompt, as tokens
    ],
)
def test_a_completion_asks_for_n_outputs_per_prompt(
    counter: TokenCounter, prompt: Any, choices: int
) -> None:
    body = orjson.dumps({"model": "gpt-3.5-turbo-instruct", "prompt": prompt, "n": 2})
    assert counter.count_request("/v1/completions", body).choices == choices
