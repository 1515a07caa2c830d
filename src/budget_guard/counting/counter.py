"""The entry point the middleware uses: count a request going in, meter its response coming out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import tiktoken

from budget_guard.counting import routes
from budget_guard.counting.anthropic_request import count_messages_request
from budget_guard.counting.chat_request import count_chat_request
from budget_guard.counting.encoding_lookup import (
    DEFAULT_ENCODING,
    encoding_for_model,
    require_known_encoding,
)
from budget_guard.counting.errors import InvalidRequestBody
from budget_guard.counting.json_fields import get_bool, get_int, get_str
from budget_guard.counting.meter import ResponseMeter
from budget_guard.counting.output_collector import OutputCollector
from budget_guard.counting.prompt_request import (
    count_completions_request,
    count_embeddings_request,
)
from budget_guard.counting.response_bodies import EventStream, JsonBody
from budget_guard.counting.responses_request import count_responses_request
from budget_guard.counting.results import RequestTokens

_InputCounter = Callable[[dict[str, Any], tiktoken.Encoding], int]

_INPUT_COUNTERS: dict[str, _InputCounter] = {
    routes.CHAT: count_chat_request,
    routes.RESPONSES: count_responses_request,
    routes.COMPLETIONS: count_completions_request,
    routes.EMBEDDINGS: count_embeddings_request,
    routes.MESSAGES: count_messages_request,
}
# Output caps by API, in the order a request's fields take precedence.
_OUTPUT_CAP_FIELDS: dict[str, tuple[str, ...]] = {
    routes.CHAT: ("max_completion_tokens", "max_tokens"),
    routes.RESPONSES: ("max_output_tokens",),
    routes.COMPLETIONS: ("max_tokens",),
    routes.EMBEDDINGS: (),
    routes.MESSAGES: ("max_tokens",),
}
_OTHER = RequestTokens(routes.OTHER, None, 0, False, None)


class TokenCounter:
    """Counts request and response tokens for every OpenAI-compatible route budget-guard meters.

    ``default_encoding`` counts models tiktoken does not know (Anthropic's included);
    ``prefer_upstream_usage=False`` makes tiktoken's counts authoritative over what the upstream
    reports.
    """

    __slots__ = ("_default_encoding", "_prefer_upstream")

    def __init__(
        self, *, default_encoding: str = DEFAULT_ENCODING, prefer_upstream_usage: bool = True
    ) -> None:
        require_known_encoding(default_encoding)  # fail at configuration, not on a request
        self._default_encoding = default_encoding
        self._prefer_upstream = prefer_upstream_usage

    def count_request(self, path: str, body: bytes, *, kind: str | None = None) -> RequestTokens:
        """Input tokens and shape of a request; raises ``InvalidRequestBody`` for a bad body.
        ``kind``: the shape the caller already decided (the guard's route policy), so the path
        is not classified again; ``path`` then only supplies an Azure deployment name."""
        if kind is None:
            kind, deployment = routes.classify(path.partition("?")[0])
        else:
            deployment = routes.classify(path.partition("?")[0])[1]
        if kind == routes.OTHER:
            return _OTHER
        data = _parse_object(body)
        model = get_str(data, "model") or deployment
        input_tokens = _INPUT_COUNTERS[kind](
            data, encoding_for_model(model, self._default_encoding)
        )
        stream = kind != routes.EMBEDDINGS and bool(get_bool(data, "stream"))
        max_output_tokens = None
        for field in _OUTPUT_CAP_FIELDS[kind]:
            max_output_tokens = get_int(data, field)
            if max_output_tokens is not None:
                break
        return RequestTokens(
            kind,
            model,
            input_tokens,
            stream,
            max_output_tokens,
            choices=_choices(data, kind),
            background=kind == routes.RESPONSES and bool(get_bool(data, "background")),
        )

    def meter(
        self, request: RequestTokens, content_type: str | None, *, read_other: bool = False
    ) -> ResponseMeter:
        """A meter for the response to ``request``, read as SSE or JSON by its content type.
        A route of no known shape is read only with ``read_other`` (for its ``usage`` and
        the ``id`` of what it created)."""
        if request.kind == routes.OTHER and not read_other:
            return ResponseMeter(request, None, None, prefer_upstream=self._prefer_upstream)
        model, default = request.model, self._default_encoding
        collector = OutputCollector(lambda: encoding_for_model(model, default))
        if content_type is None:
            streamed = request.stream
        else:
            streamed = "text/event-stream" in content_type.lower()
        reader = EventStream(collector) if streamed else JsonBody(collector)
        return ResponseMeter(request, reader, collector, prefer_upstream=self._prefer_upstream)


# Fields that multiply a request's output: Chat's and Completions' ``n``, and Completions'
# ``best_of`` (generated upstream, billed, only the best returned).
_CHOICE_FIELDS: dict[str, tuple[str, ...]] = {
    routes.CHAT: ("n",),
    routes.COMPLETIONS: ("n", "best_of"),
}
MAX_CHOICES = 1 << 20
"""Past any upstream's own limit; keeps a hostile ``n`` from overflowing a reservation."""


def _choices(data: dict[str, Any], kind: str) -> int:
    choices = 1
    for field in _CHOICE_FIELDS.get(kind, ()):
        value = get_int(data, field)
        if value is not None and value > choices:
            choices = value
    return min(choices, MAX_CHOICES)


def _parse_object(body: bytes) -> dict[str, Any]:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestBody(
            f"We could not parse the JSON body of your request ({exc}). The body must be valid "
            "JSON.",
            None,
        ) from None
    if not isinstance(data, dict):
        raise InvalidRequestBody("The body of your request must be a JSON object.", None)
    return data
