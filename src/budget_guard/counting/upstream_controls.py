"""Request fields an upstream honours from a client beyond the API the guard meters, which
no guarded request may carry.

The guard counts a request as the API it proxies defines it. OpenAI-compatible servers and
routers read more, and each extra is a way to spend uncharged or to reach what is not the
company's, under the operator's one key:

- **another model than the one counted**: LiteLLM's ``fallbacks`` (and the router settings
  holding them), tried when the first model fails, which a client can arrange, and
  ``extra_body``, merged over the request by the SDK it calls; OpenRouter's ``models``,
  ``route`` and ``provider``; LocalAI's ``backend``; llama.cpp's and SGLang's per-request
  LoRA adapters;
- **an answer or work the guard cannot charge**: LiteLLM's ``mock_response`` (an answer the
  client wrote, whose ids the guard would remember as the client's objects), its timeouts
  and retries (a request given up and answered with an error, charged nothing, after the
  provider billed each attempt); output caps the guard does not read (llama.cpp's
  ``n_predict`` and ``n_cmpl``, TGI's ``max_new_tokens``), a client's chat template or
  prompt embeddings (vLLM: a prompt the guard never counted); Together's ``safety_model``
  and OpenRouter's ``plugins``, billed beside the tokens;
- **someone else's data or the server's internals**: Azure's ``data_sources`` (On Your Data
  searches any index the operator's identity can read), vLLM's and SGLang's KV-transfer and
  session parameters, llama.cpp's ``id_slot``, a client-chosen ``request_id`` (vLLM stores
  a response under it, replacing another company's conversation stored there), and where to
  send the request (``api_base``, ``api_key``).

None of them is a field of OpenAI's, Azure's or Anthropic's APIs at the top of a request, so
a request naming one is refused with a ``400`` naming it, in JSON and in a form (where
LiteLLM reads ``name[]`` as ``name``). Keys are matched as loosely as Go and .NET servers
read them (``key_case.fold``: any case, ``_`` and ``-`` ignored), so ``extraBody`` and
``Data_Sources`` are the same keys.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from budget_guard.counting.errors import InvalidRequestBody
from budget_guard.counting.key_case import READ_KEYS, fold

UPSTREAM_CONTROLS = frozenset(
    {
        # LiteLLM
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
        # Azure OpenAI
        "data_sources",
        "enhancements",
        # OpenRouter
        "models",
        "plugins",
        "preset",
        "provider",
        "route",
        # LocalAI
        "backend",
        "model_base_name",
        # llama.cpp
        "id_slot",
        "lora",
        "n_cmpl",
        "n_predict",
        # SGLang
        "bootstrap_host",
        "bootstrap_port",
        "bootstrap_room",
        "custom_logit_processor",
        "lora_path",
        "rid",
        "session_params",
        # vLLM
        "chat_template",
        "ec_transfer_params",
        "kv_transfer_params",
        "prompt_embeds",
        "request_id",
        # TGI, Ollama's own API
        "max_new_tokens",
        "num_predict",
        # Together
        "safety_model",
    }
)
_BY_FOLD = frozenset(fold(key) for key in UPSTREAM_CONTROLS)
# The APIs' own fields the guard reads: passed over without folding (most keys of a request).
_API_FIELDS = READ_KEYS - UPSTREAM_CONTROLS


def refuse_upstream_controls(keys: Iterable[str]) -> None:
    """Raise ``InvalidRequestBody`` naming the first of ``keys`` (a request's top-level
    fields) that is an upstream's control."""
    for key in keys:
        if key in _API_FIELDS:
            continue
        name = key[:-2] if key.endswith("[]") else key
        if name.startswith("mock_"):
            raise InvalidRequestBody(f"The guard forwards no made-up answer: remove '{key}'.", key)
        if fold(name) in _BY_FOLD:
            raise InvalidRequestBody(
                f"'{key}' is not a field of the API: the guard forwards a request only as it "
                "counts it, to the model it names.",
                key,
            )


def refuse_upstream_fields(data: dict[str, Any]) -> None:
    """A parsed JSON request's top level: no upstream control, and one model."""
    refuse_model_list(data.get("model"))
    refuse_upstream_controls(data)


def refuse_model_list(model: object) -> None:
    """LiteLLM calls each model of a ``model`` listed with commas: refused."""
    if isinstance(model, str) and "," in model:
        raise InvalidRequestBody("The guard forwards a request to one model: 'model'.", "model")
