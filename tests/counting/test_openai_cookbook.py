"""OpenAI's published example conversations count exactly what OpenAI's API reported for them.

Source: openai/openai-cookbook, examples/How_to_count_tokens_with_tiktoken.ipynb, sections 6
("Counting tokens for chat completions API calls") and 7 ("... with tool calls"): the notebook
prints ``response.usage.prompt_tokens`` from the live API for each model.
"""

from __future__ import annotations

import orjson
import pytest

from budget_guard.counting import TokenCounter

EXAMPLE_MESSAGES = [
    {
        "role": "system",
        "content": "You are a helpful, pattern-following assistant that translates corporate "
        "jargon into plain English.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "New synergies will help drive top-line growth.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Things working well together will increase revenue.",
    },
    {
        "role": "system",
        "name": "example_user",
        "content": "Let's circle back when we have more bandwidth to touch base on opportunities "
        "for increased leverage.",
    },
    {
        "role": "system",
        "name": "example_assistant",
        "content": "Let's talk later when we're less busy about how to do better.",
    },
    {
        "role": "user",
        "content": "This late pivot means we don't have time to boil the ocean for the client "
        "deliverable.",
    },
]

WEATHER_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_current_weather",
            "description": "Get the current weather in a given location",
            "parameters": {
                "type": "object",
                "properties": {
                    "location": {
                        "type": "string",
                        "description": "The city and state, e.g. San Francisco, CA",
                    },
                    "unit": {
                        "type": "string",
                        "description": "The unit of temperature to return",
                        "enum": ["celsius", "fahrenheit"],
                    },
                },
                "required": ["location"],
            },
        },
    }
]

WEATHER_MESSAGES = [
    {
        "role": "system",
        "content": "You are a helpful assistant that can answer to questions about the weather.",
    },
    {"role": "user", "content": "What's the weather like in San Francisco?"},
]


def _chat(counter: TokenCounter, **body: object) -> int:
    return counter.count_request("/v1/chat/completions", orjson.dumps(body)).input_tokens


@pytest.mark.parametrize(
    ("model", "reported_by_openai"),
    [
        ("gpt-3.5-turbo", 129),  # cl100k_base
        ("gpt-4-0613", 129),
        ("gpt-4", 129),
        ("gpt-4o", 124),  # o200k_base
        ("gpt-4o-mini", 124),
    ],
)
def test_example_conversation_matches_openai_usage(
    counter: TokenCounter, model: str, reported_by_openai: int
) -> None:
    assert _chat(counter, model=model, messages=EXAMPLE_MESSAGES) == reported_by_openai


@pytest.mark.parametrize(
    ("model", "reported_by_openai"),
    [
        ("gpt-3.5-turbo", 105),  # cl100k_base
        ("gpt-4", 105),
        ("gpt-4o", 101),  # o200k_base
        ("gpt-4o-mini", 101),
    ],
)
def test_example_with_tools_matches_openai_usage(
    counter: TokenCounter, model: str, reported_by_openai: int
) -> None:
    assert (
        _chat(counter, model=model, messages=WEATHER_MESSAGES, tools=WEATHER_TOOLS)
        == reported_by_openai
    )


def test_legacy_functions_parameter_counts_like_tools(counter: TokenCounter) -> None:
    functions = [tool["function"] for tool in WEATHER_TOOLS]
    assert _chat(counter, model="gpt-4o", messages=WEATHER_MESSAGES, functions=functions) == 101


def test_same_examples_through_a_gateway_prefix(counter: TokenCounter) -> None:
    body = orjson.dumps({"model": "gpt-4o", "messages": EXAMPLE_MESSAGES})
    counted = counter.count_request("/openai/v1/chat/completions", body)
    assert (counted.kind, counted.input_tokens) == ("chat", 124)
