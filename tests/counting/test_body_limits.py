"""Hostile structure in a counted body is a 400 naming the limit, never a RecursionError.

Each recursive walk counting does (Anthropic tool_result content, tool JSON schemas, tool_use
inputs it re-serializes) is driven as deep as orjson will parse; real deep traffic (OpenAI's
deepest strict schema) still counts.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from budget_guard.counting import InvalidRequestBody, TokenCounter
from budget_guard.counting.body_limits import MAX_DEPTH_CEILING, BodyLimits

CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"
PARSER_LIMIT = 1000  # orjson refuses more than 1024 levels; stay just inside what it parses


def depth(value: object) -> int:
    """Levels of arrays and objects, the body itself being 1 (iterative: bodies here are deep)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, level)
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, level + 1) for child in children)
    return deepest


def nested(opening: str, leaf: str, closing: str, levels: int) -> str:
    return opening * levels + leaf + closing * levels


def nested_tool_results(levels: int) -> bytes:
    """The issue's body: tool_result content nested ``levels`` deep on /v1/messages."""
    block = nested(
        '{"type":"tool_result","tool_use_id":"t","content":[',
        '{"type":"text","text":"leaf"}',
        "]}",
        levels,
    )
    return (
        '{"model":"claude-sonnet-4-20250514","max_tokens":10,'
        f'"messages":[{{"role":"user","content":[{block}]}}]}}'
    ).encode()


def nested_tool_schema(levels: int) -> bytes:
    schema = nested(
        '{"type":"object","properties":{"child":',
        '{"type":"string","description":"leaf"}',
        "}}",
        levels,
    )
    return (
        '{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],'
        f'"tools":[{{"type":"function","function":{{"name":"f","parameters":{schema}}}}}]}}'
    ).encode()


def nested_tool_use_input(levels: int) -> bytes:
    value = nested("[", "1", "]", levels)
    return (
        '{"model":"claude-sonnet-4-20250514","max_tokens":10,"messages":[{"role":"assistant",'
        f'"content":[{{"type":"tool_use","id":"t","name":"f","input":{{"x":{value}}}}}]}}]}}'
    ).encode()


def strictest_openai_schema() -> dict[str, Any]:
    """OpenAI Structured Outputs allow 10 levels of nested objects; this nests each through an
    optional array (anyOf [array, null]), the deepest way to write them."""
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {"name": {"type": "string"}},
        "required": ["name"],
        "additionalProperties": False,
    }
    for _ in range(9):
        schema = {
            "type": "object",
            "properties": {
                "children": {"anyOf": [{"type": "array", "items": schema}, {"type": "null"}]}
            },
            "required": ["children"],
            "additionalProperties": False,
        }
    return {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "Fill the tree."}],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "tree", "strict": True, "schema": schema},
        },
        "tools": [{"type": "function", "function": {"name": "tree", "parameters": schema}}],
    }


def refusal(counter: TokenCounter, path: str, body: dict[str, Any] | bytes) -> InvalidRequestBody:
    with pytest.raises(InvalidRequestBody) as caught:
        counter.count_request(path, body if isinstance(body, bytes) else orjson.dumps(body))
    return caught.value


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (MESSAGES, nested_tool_results(PARSER_LIMIT // 2 - 3)),
        (CHAT, nested_tool_schema(PARSER_LIMIT // 2 - 4)),
        (MESSAGES, nested_tool_use_input(PARSER_LIMIT - 8)),
        (MESSAGES, nested_tool_use_input(300)),  # past orjson's 254-level writer
    ],
    ids=["tool_result", "tool_schema", "tool_use_input", "tool_use_input_300"],
)
def test_nesting_as_deep_as_json_parses_is_refused_by_the_depth_limit(
    counter: TokenCounter, path: str, body: bytes
) -> None:
    assert depth(orjson.loads(body)) > 128  # and orjson parses it: under its 1024
    error = refusal(counter, path, body)
    assert "nesting too deep" in error.message
    assert "guard.max_body_depth" in error.message
    assert error.param is not None and error.param.count(".") >= 127


@pytest.mark.parametrize(
    "body",
    [
        nested_tool_results(MAX_DEPTH_CEILING // 2 - 3),
        nested_tool_use_input(MAX_DEPTH_CEILING - 8),
    ],
    ids=["tool_result", "tool_use_input"],
)
def test_the_deepest_body_any_setting_allows_is_counted(body: bytes) -> None:
    """At the ceiling a configuration may set, every recursive walk still finishes."""
    assert MAX_DEPTH_CEILING - 2 <= depth(orjson.loads(body)) <= MAX_DEPTH_CEILING
    counter = TokenCounter(body_limits=BodyLimits(max_depth=MAX_DEPTH_CEILING))
    assert counter.count_request(MESSAGES, body).input_tokens > 0


def test_a_schema_nested_as_deep_as_json_parses_counts_without_recursion() -> None:
    counter = TokenCounter(body_limits=BodyLimits(max_depth=MAX_DEPTH_CEILING))
    shallow = counter.count_request(CHAT, nested_tool_schema(90)).input_tokens
    # Every nested level is one more property: 3 + "child:object:" tokens, plus its opening.
    deeper = counter.count_request(CHAT, nested_tool_schema(91)).input_tokens
    assert deeper > shallow > 0


def test_openais_deepest_strict_schema_is_well_within_the_default(counter: TokenCounter) -> None:
    body = strictest_openai_schema()
    assert depth(body) <= 64  # half the default of 128
    assert counter.count_request(CHAT, orjson.dumps(body)).input_tokens > 0


def test_a_body_one_level_past_the_limit_names_the_field() -> None:
    counter = TokenCounter(body_limits=BodyLimits(max_depth=5))
    ok = {"model": "gpt-4o", "messages": [{"role": "user", "content": [{"type": "text"}]}]}
    assert depth(ok) == 5
    counter.count_request(CHAT, orjson.dumps(ok))
    deep = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": [{"type": "text", "x": []}]}],
    }
    error = refusal(counter, CHAT, deep)
    assert error.param == "messages.[0].content.[0].x"
    assert error.message == (
        "Invalid 'messages.[0].content.[0].x': nesting too deep. Expected at most 5 levels of "
        "nested arrays and objects in the body, but got more (budget-guard limit "
        "guard.max_body_depth)."
    )


def test_an_array_past_the_default_limit_is_refused(counter: TokenCounter) -> None:
    """A million token ids (a 1M-token context sent as ids) count; one more is refused."""
    fits = {"model": "davinci-002", "prompt": [1] * 1_000_000}
    assert counter.count_request("/v1/completions", orjson.dumps(fits)).input_tokens == 1_000_000
    error = refusal(counter, "/v1/completions", {"model": "davinci-002", "prompt": [1] * 1_000_001})
    assert error.param == "prompt"
    assert error.message == (
        "Invalid 'prompt': array too long. Expected an array with maximum length 1000000, but "
        "got an array with length 1000001 instead (budget-guard limit "
        "guard.max_body_array_items)."
    )


def test_an_object_past_the_default_key_limit_is_refused(counter: TokenCounter) -> None:
    def body(keys: int) -> dict[str, Any]:
        properties = {f"p{i}": {"type": "string"} for i in range(keys)}
        return {
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [
                {
                    "type": "function",
                    "function": {
                        "name": "f",
                        "parameters": {"type": "object", "properties": properties},
                    },
                }
            ],
        }

    assert counter.count_request(CHAT, orjson.dumps(body(10_000))).input_tokens > 10_000
    error = refusal(counter, CHAT, body(10_001))
    assert error.param == "tools.[0].function.parameters.properties"
    assert "Expected an object with at most 10000 keys, but got 10001 keys" in error.message
    assert "guard.max_body_object_keys" in error.message


def test_the_body_object_itself_is_bounded_too() -> None:
    counter = TokenCounter(body_limits=BodyLimits(max_object_keys=2))
    error = refusal(counter, CHAT, {"model": "gpt-4o", "messages": [], "n": 1})
    assert error.param is None
    assert error.message.startswith("Invalid request body: object has too many keys.")


def test_limits_reject_settings_that_would_allow_a_recursion_error() -> None:
    with pytest.raises(ValueError, match="max_depth must be between 1 and 200"):
        BodyLimits(max_depth=MAX_DEPTH_CEILING + 1)


def test_brackets_inside_strings_are_text_not_nesting() -> None:
    """The byte-level shortcut counts every bracket, strings included; a body it cannot clear
    is walked, and text is never taken for nesting."""
    counter = TokenCounter(body_limits=BodyLimits(max_depth=5))
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "[{" * 50}]}
    assert counter.count_request(CHAT, orjson.dumps(body)).input_tokens > 0
