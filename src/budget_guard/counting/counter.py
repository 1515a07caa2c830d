"""The entry point the middleware uses: count a request going in, meter its response coming out.

``acount_request`` is the one the event loop calls: a small body whose encoding is built is
counted inline (faster than any hand-off, and brief), anything else in the shared counting pool,
so a large prompt or a first-time encoding build never holds the loop.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import orjson
import tiktoken

from budget_guard.counting import routes
from budget_guard.counting.anthropic_request import count_messages_request
from budget_guard.counting.body_limits import BodyLimits, check_body_shape, within_by_size
from budget_guard.counting.chat_request import count_chat_request
from budget_guard.counting.duplicate_keys import check_no_duplicate_keys
from budget_guard.counting.encoding_lookup import (
    DEFAULT_ENCODING,
    ByteBound,
    byte_bound,
    encoding_name_for_model,
    get_encoding,
    loaded_encoding,
    require_known_encoding,
)
from budget_guard.counting.errors import InvalidRequestBody
from budget_guard.counting.form_fields import is_form, read_form
from budget_guard.counting.json_body import JsonBody
from budget_guard.counting.json_fields import get_bool, get_int, get_str
from budget_guard.counting.key_case import check_key_case, check_top_key_case
from budget_guard.counting.meter import ResponseMeter
from budget_guard.counting.output_collector import OutputCollector
from budget_guard.counting.prompt_request import (
    count_completions_request,
    count_embeddings_request,
)
from budget_guard.counting.references import is_fine_tuned_model, may_refer, object_references
from budget_guard.counting.response_bodies import EventStream
from budget_guard.counting.responses_request import count_responses_request
from budget_guard.counting.results import RequestTokens
from budget_guard.counting.upstream_controls import refuse_model_list, refuse_upstream_fields
from budget_guard.counting.worker_pool import CountingPool, shared_pool

_InputCounter = Callable[[dict[str, Any], tiktoken.Encoding], int]

_INPUT_COUNTERS: dict[str, _InputCounter] = {
    routes.CHAT: count_chat_request,
    routes.RESPONSES: count_responses_request,
    routes.COMPLETIONS: count_completions_request,
    routes.EMBEDDINGS: count_embeddings_request,
    routes.MESSAGES: count_messages_request,
}
# Counters whose image prices depend on the model, which may be the deployment's name only.
_PRICES_IMAGES: dict[str, Callable[[dict[str, Any], tiktoken.Encoding, str | None], int]] = {
    routes.CHAT: count_chat_request,
    routes.RESPONSES: count_responses_request,
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
_KINDS = frozenset({*_INPUT_COUNTERS, routes.OTHER})

INLINE_MAX_BYTES = 16 * 1024
"""Bodies up to this size are counted on the event loop when their encoding is built: below it
a hand-off to the pool costs more than a tenth of the counting itself, and the loop is held for
well under a millisecond (``benchmarks/bench_counting_offload.py`` measures both)."""


class TokenCounter:
    """Counts request and response tokens for every OpenAI-compatible route budget-guard meters.

    ``default_encoding`` counts models tiktoken does not know (Anthropic's included);
    ``prefer_upstream_usage=False`` makes tiktoken's counts authoritative over what the upstream
    reports. ``body_limits`` bounds the shape of a counted body (a 400 past it); ``pool`` and
    ``inline_max_bytes`` decide where ``acount_request`` counts (tests and benchmarks vary them).
    """

    __slots__ = ("_default_encoding", "_inline_max_bytes", "_limits", "_pool", "_prefer_upstream")

    def __init__(
        self,
        *,
        default_encoding: str = DEFAULT_ENCODING,
        prefer_upstream_usage: bool = True,
        body_limits: BodyLimits | None = None,
        pool: CountingPool | None = None,
        inline_max_bytes: int = INLINE_MAX_BYTES,
    ) -> None:
        require_known_encoding(default_encoding)  # fail at configuration, not on a request
        self._default_encoding = default_encoding
        self._prefer_upstream = prefer_upstream_usage
        self._limits = body_limits or BodyLimits()
        self._pool = pool
        self._inline_max_bytes = inline_max_bytes

    def count_request(self, path: str, body: bytes, *, kind: str | None = None) -> RequestTokens:
        """Input tokens and shape of a request; raises ``InvalidRequestBody`` for a bad body.

        ``kind`` (a ``routes`` constant) skips path classification: the caller has routed the
        request already. Blocks for as long as counting takes; ``acount_request`` does not.
        """
        return self._count(*_route(path, kind), body)

    async def acount_request(
        self, path: str, body: bytes, *, kind: str | None = None
    ) -> RequestTokens:
        """``count_request`` without holding the event loop for more than a small body's worth.

        Inline when the body is at most ``inline_max_bytes`` and its encoding is built; in the
        shared counting pool otherwise (a legacy encoding's first use reads its rank file).
        """
        kind, deployment = _route(path, kind)
        if kind == routes.OTHER:
            return _OTHER
        pool = self._pool or shared_pool()
        if len(body) > self._inline_max_bytes:
            return await pool.run(functools.partial(self._count, kind, deployment, body), len(body))
        data = self._parse(body)
        model = _model(data, deployment)
        refs = object_references(data) if may_refer(body) else ()
        name = encoding_name_for_model(model, self._default_encoding)
        encoding = loaded_encoding(name)
        if encoding is not None:
            return _count_deferred(kind, model, body, data, encoding, refs)
        return await pool.run(lambda: _count_parsed(kind, model, data, get_encoding(name), refs), 0)

    def _count(self, kind: str, deployment: str | None, body: bytes) -> RequestTokens:
        if kind == routes.OTHER:
            return _OTHER
        data = self._parse(body)
        model = _model(data, deployment)
        refs = object_references(data) if may_refer(body) else ()
        encoding = get_encoding(encoding_name_for_model(model, self._default_encoding))
        return _count_parsed(kind, model, data, encoding, refs)

    async def acount_other(self, body: bytes, content_type: str | None) -> RequestTokens:
        """What the guard must know of a request of no metered shape: the objects it names
        and how many outputs it asks for (the images API's ``n``, in JSON or in a form: a
        multipart upload or a URL-encoded one). A body that is, or says it is, JSON or a form
        must parse, a JSON one
        within the same bounds as a counted one: what the guard cannot read, an upstream
        might read differently. Off the loop when large."""
        if is_form(content_type):
            read = functools.partial(_form, body, content_type or "")
        elif _looks_like_json(body, content_type):
            read = functools.partial(self._other, body)
        else:
            return _OTHER  # an audio file, say: no keys to name objects with
        if len(body) > self._inline_max_bytes:
            pool = self._pool or shared_pool()
            return await pool.run(read, len(body))
        return read()

    def _other(self, body: bytes) -> RequestTokens:
        data = _parse_json(body)
        if not within_by_size(body, self._limits):
            check_body_shape(data, self._limits)
        check_no_duplicate_keys(body, data)
        check_top_key_case(data)
        if isinstance(data, dict):
            refuse_upstream_fields(data)
        refs = object_references(data) if may_refer(body) else ()
        outputs = data.get("n") if isinstance(data, dict) else None
        if isinstance(outputs, bool) or not isinstance(outputs, int) or outputs < 1:
            outputs = 1
        return RequestTokens(
            routes.OTHER,
            None,
            0,
            False,
            None,
            choices=min(outputs, MAX_CHOICES),
            references=refs,
        )

    def _parse(self, body: bytes) -> dict[str, Any]:
        data = _parse_object(body)
        if not within_by_size(body, self._limits):
            check_body_shape(data, self._limits)
        check_no_duplicate_keys(body, data)
        check_key_case(data)
        refuse_upstream_fields(data)
        return data

    def meter(
        self, request: RequestTokens, content_type: str | None, *, read_other: bool = False
    ) -> ResponseMeter:
        """A meter for the response to ``request``, read as SSE or JSON by its content type.
        A route of no known shape is read only with ``read_other`` (for its ``usage`` and
        the ``id`` of what it created)."""
        if request.kind == routes.OTHER and not read_other:
            return ResponseMeter(request, None, None, prefer_upstream=self._prefer_upstream)
        # The encoding the request was counted with, so already built: metering on the loop
        # never reads a rank file.
        name = encoding_name_for_model(request.model, self._default_encoding)
        collector = OutputCollector(functools.partial(get_encoding, name))
        if content_type is None:
            streamed = request.stream
        else:
            streamed = "text/event-stream" in content_type.lower()
        reader = EventStream(collector) if streamed else JsonBody(collector)
        return ResponseMeter(request, reader, collector, prefer_upstream=self._prefer_upstream)


def _form(body: bytes, content_type: str) -> RequestTokens:
    """A multipart upload (image edits, variations, files): its ``n``, the one field that
    changes what it costs, and its ``model``, an object when a fine-tuned one."""
    outputs, model = read_form(body, content_type)
    refuse_model_list(model)
    references = (model,) if model is not None and is_fine_tuned_model(model) else ()
    return RequestTokens(
        routes.OTHER,
        None,
        0,
        False,
        None,
        choices=min(outputs or 1, MAX_CHOICES),
        references=references,
    )


def _route(path: str, kind: str | None) -> tuple[str, str | None]:
    if kind is None:
        return routes.classify(path.partition("?")[0])
    if kind not in _KINDS:
        raise ValueError(f"unknown request kind {kind!r}")
    return kind, routes.classify(path.partition("?")[0])[1]  # an Azure deployment's name


def _model(data: dict[str, Any], deployment: str | None) -> str | None:
    """Azure serves the deployment the path names, whatever the body says: it is the model
    counted and weighed."""
    return deployment or get_str(data, "model")


_BOM = b"\xef\xbb\xbf"
_LEADING_SPACE = re.compile(rb"[ \t\r\n]*")


def _looks_like_json(body: bytes, content_type: str | None) -> bool:
    """Labelled JSON, or starting like JSON (or with a BOM) whatever its label says."""
    start = _LEADING_SPACE.match(body).end()  # type: ignore[union-attr]
    if start == len(body):
        return False  # nothing to read, whatever the label says
    if content_type is not None and "json" in content_type.lower():
        return True
    return body[start : start + 1] in (b"{", b"[") or body.startswith(_BOM, start)


def _count_parsed(
    kind: str,
    model: str | None,
    data: dict[str, Any],
    encoding: tiktoken.Encoding,
    references: tuple[str, ...] = (),
) -> RequestTokens:
    return _shaped(kind, model, data, references, _input_tokens(kind, model, data, encoding))


def _count_deferred(
    kind: str,
    model: str | None,
    body: bytes,
    data: dict[str, Any],
    encoding: tiktoken.Encoding,
    references: tuple[str, ...],
) -> RequestTokens:
    """The request with its exact count left until asked for: the same walk runs now under a
    :class:`ByteBound`, so a malformed body is refused here as before and the bound is known,
    but no text goes through the BPE (in a busy server, the larger part of counting a short
    prompt). Used for bodies counted on the loop, whose later count is as brief. The count
    keeps the body's bytes, not the parsed document: one object instead of dozens for the
    garbage collector to walk while a stream is open (parsing it again takes microseconds)."""
    bound = _input_tokens(kind, model, data, byte_bound(encoding.name))
    count = functools.partial(_count_body, kind, model, body, encoding)
    return _shaped(kind, model, data, references, None, count=count, bound=bound)


def _count_body(kind: str, model: str | None, body: bytes, encoding: tiktoken.Encoding) -> int:
    return _input_tokens(kind, model, _parse_object(body), encoding)


def _input_tokens(
    kind: str, model: str | None, data: dict[str, Any], encoding: tiktoken.Encoding | ByteBound
) -> int:
    if kind in _PRICES_IMAGES:
        return _PRICES_IMAGES[kind](data, encoding, model)  # type: ignore[arg-type]
    return _INPUT_COUNTERS[kind](data, encoding)  # type: ignore[arg-type]


def _shaped(
    kind: str,
    model: str | None,
    data: dict[str, Any],
    references: tuple[str, ...],
    input_tokens: int | None,
    *,
    count: Callable[[], int] | None = None,
    bound: int | None = None,
) -> RequestTokens:
    stream = kind != routes.EMBEDDINGS and bool(get_bool(data, "stream"))
    # The largest cap named: upstreams disagree on which wins (OpenAI and vLLM read
    # max_completion_tokens, Ollama only max_tokens), so the hold covers either.
    max_output_tokens = None
    for field in _OUTPUT_CAP_FIELDS[kind]:
        cap = get_int(data, field)
        if cap is not None and (max_output_tokens is None or cap > max_output_tokens):
            max_output_tokens = cap
    return RequestTokens(
        kind,
        model,
        input_tokens,
        stream,
        max_output_tokens,
        choices=_choices(data, kind),
        background=kind == routes.RESPONSES and bool(get_bool(data, "background")),
        references=references,
        count=count,
        bound=bound,
    )


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
    if kind == routes.COMPLETIONS:
        # A list of prompts (strings, or token lists) is answered prompt by prompt, each with
        # its choices; a list of integers is one prompt.
        prompt = data.get("prompt")
        if isinstance(prompt, list) and prompt and type(prompt[0]) is not int:
            choices *= len(prompt)
    return min(choices, MAX_CHOICES)


def _parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestBody(
            f"We could not parse the JSON body of your request ({exc}). The body must be valid "
            "JSON.",
            None,
        ) from None


def _parse_object(body: bytes) -> dict[str, Any]:
    data = _parse_json(body)
    if not isinstance(data, dict):
        raise InvalidRequestBody("The body of your request must be a JSON object.", None)
    return data
