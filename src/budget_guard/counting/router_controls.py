"""Request fields a routing upstream honours from a client, which no guarded request may carry.

LiteLLM reads more from a request body than the API it proxies defines: a ``mock_response`` it
answers without a model (an answer the client wrote, whose ids the guard would remember as
objects the client created); ``fallbacks`` and the router settings it tries when the model
fails, which a client can arrange (models never counted or weighed, maybe another company's
fine-tuned one); ``extra_body``, merged over the request by the OpenAI SDK it calls (another
``model``, ``n`` or ``background`` than the guard read); timeouts and retries (a request
given up, answered with an error and so charged nothing, after the provider billed each
attempt); and where to send it (``api_base``, ``api_key``). OpenAI, Azure and Anthropic
define none of these at the top of a request, so a request naming one is refused, in JSON
and in a form (where LiteLLM reads ``name[]`` as ``name``).
"""

from __future__ import annotations

from collections.abc import Iterable

from budget_guard.counting.errors import InvalidRequestBody

ROUTER_CONTROLS = frozenset(
    {
        "api_base",
        "api_key",
        "api_version",
        "base_url",
        "content_policy_fallbacks",
        "context_window_fallbacks",
        "custom_llm_provider",
        "deployment_id",
        "extra_body",
        "extra_headers",
        "extra_query",
        "fallbacks",
        "fastest_response",
        "litellm_params",
        "max_retries",
        "model_group_retry_policy",
        "model_list",
        "num_retries",
        "request_timeout",
        "router_settings_override",
        "specific_deployment",
        "stream_timeout",
        "timeout",
        "user_config",
    }
)


def refuse_router_controls(keys: Iterable[str]) -> None:
    """Raise ``InvalidRequestBody`` naming the first of ``keys`` (a request's top-level
    fields) that is a router's control."""
    for key in keys:
        name = key[:-2] if key.endswith("[]") else key
        if name.startswith("mock_"):
            raise InvalidRequestBody(f"The guard forwards no made-up answer: remove '{key}'.", key)
        if name in ROUTER_CONTROLS:
            raise InvalidRequestBody(
                f"'{key}' is not a field of the API: the guard forwards a request to the "
                "model it names, as it is counted.",
                key,
            )


def refuse_model_list(model: object) -> None:
    """LiteLLM calls each model of a ``model`` listed with commas: refused."""
    if isinstance(model, str) and "," in model:
        raise InvalidRequestBody("The guard forwards a request to one model: 'model'.", "model")
