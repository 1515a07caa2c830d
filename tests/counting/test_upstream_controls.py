"""Fields an upstream honours from a client beyond the API (LiteLLM, Azure, OpenRouter, vLLM,
llama.cpp...), which would make it answer without a model, serve a model the guard never
counted, do work it cannot charge, or read what is not the company's: refused in every body
the guard reads, JSON or form, naming the field."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from budget_guard.counting import InvalidRequestBody, TokenCounter
from budget_guard.counting.upstream_controls import UPSTREAM_CONTROLS

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
FINE_TUNED = "ft:gpt-4o-mini-2024-07-18:acme::9zFkq3Ja"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("mock_response", "I made this up"),
        ("fallbacks", [FINE_TUNED]),
        ("router_settings_override", {"fallbacks": [{"gpt-4o-mini": [FINE_TUNED]}]}),
        ("user_config", {"model_list": []}),
        ("extra_body", {"model": "o1-pro", "n": 8}),
        ("timeout", 0.2),
        ("num_retries", 30),
        ("api_base", "http://attacker.example"),
        ("extraBody", {"model": "o1-pro"}),  # read loosely, as Go and .NET servers read keys
        ("data_sources", [{"type": "azure_search", "parameters": {"index_name": "b"}}]),
        ("dataSources", []),
        ("models", ["gpt-4o-mini", FINE_TUNED]),  # OpenRouter's fallbacks
        ("provider", {"order": ["x"]}),
        ("n_predict", 100_000),  # llama.cpp's cap, over the max_tokens the guard read
        ("kv_transfer_params", {"remote_block_ids": [1]}),
        ("chat_template", "{{ 'x' * 100000 }}"),
        ("request_id", "someone-elses"),
    ],
)
@pytest.mark.parametrize("path", ["/v1/chat/completions", None])
async def test_an_upstream_control_is_refused_by_name(
    counter: TokenCounter, field: str, value: Any, path: str | None
) -> None:
    body = orjson.dumps({**CHAT, field: value})
    with pytest.raises(InvalidRequestBody) as refused:
        if path is None:  # a configured route's body
            await counter.acount_other(body, "application/json")
        else:
            await counter.acount_request(path, body)
    assert refused.value.param == field


async def test_a_model_listed_with_commas_is_refused(counter: TokenCounter) -> None:
    body = orjson.dumps({**CHAT, "model": f"gpt-4o-mini,{FINE_TUNED}"})
    with pytest.raises(InvalidRequestBody) as refused:
        await counter.acount_request("/v1/chat/completions", body)
    assert refused.value.param == "model"


@pytest.mark.parametrize(
    ("data", "param"),
    [
        ({"fallbacks[]": FINE_TUNED}, "fallbacks[]"),
        ({"mock_response": "hi"}, "mock_response"),
        ({"model[]": FINE_TUNED}, "model"),
        ({"model": f"dall-e-2,{FINE_TUNED}"}, "model"),
    ],
)
@pytest.mark.parametrize("multipart", [True, False])
async def test_a_form_carries_no_upstream_control(
    counter: TokenCounter, data: dict[str, str], param: str, multipart: bool
) -> None:
    files = {"image": ("a.png", b"\x89PNG")} if multipart else None
    request = httpx.Request("POST", "http://x/v1/images/variations", data=data, files=files)
    with pytest.raises(InvalidRequestBody) as refused:
        await counter.acount_other(request.read(), request.headers["content-type"])
    assert refused.value.param == param


def test_no_control_is_a_field_of_the_apis_the_guard_meters() -> None:
    """The guard reads these APIs' own fields; none of them is refused as a control (but
    ``request_id``, which the guard reads only to refuse it however it is written)."""
    from budget_guard.counting.key_case import READ_KEYS, fold

    controls = {fold(key) for key in UPSTREAM_CONTROLS}
    assert controls & {fold(key) for key in READ_KEYS} == {"requestid"}
