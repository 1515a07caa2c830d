"""A hostile tenant against the whole guarded proxy, on Redis, in front of an upstream that
records everything that reaches it.

Every company's requests reach the upstream under the operator's one key, so each trick here
must end one of two ways: the request never reached the upstream, or it was charged. Objects
stored upstream must stay within the company that created them.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest

from budget_guard.app import build_app
from budget_guard.auth import ApiKeyAuthenticator
from budget_guard.budget.ledger import Ledger
from budget_guard.budget.window import ConfigError
from budget_guard.config import settings_from_mapping
from budget_guard.guard import BudgetGuardMiddleware, GuardSettings
from budget_guard.stores import MemoryStore
from tests.proxy.servers import serve
from tests.security.sec_support import (
    COMPANY_A,
    COMPANY_B,
    KEY_A,
    KEY_B,
    UPSTREAM_KEY,
    assert_openai_error,
    bearer,
    config,
    raw_exchange,
    request_head,
)
from tests.security.tenant_upstream import (
    IMAGE_USAGE,
    SLOW_MODEL,
    SLOW_SECONDS,
    WRITTEN,
    TenantUpstream,
)

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Say hello."}]}
CHAT_BODY = orjson.dumps(CHAT)
JSON = {"Content-Type": "application/json"}

OPTED_IN = [
    {"method": "POST", "path": "/v1/images/generations", "charge": "usage", "tokens": 5_000},
    {"method": "POST", "path": "/v1/images/variations", "charge": "usage", "tokens": 1_000},
    {"method": "POST", "path": "/v1/audio/speech", "charge": "flat", "tokens": 300},
    {"method": "POST", "path": "/v1/moderations", "charge": "free"},
    {"method": "POST", "path": "/v1/files", "charge": "free", "creates": True},
    {"method": "GET", "path": "/v1/files/{file_id}", "charge": "free"},
    {"method": "GET", "path": "/v1/files/{file_id}/content", "charge": "free"},
    {"method": "DELETE", "path": "/v1/files/{file_id}", "charge": "free"},
]


@dataclass
class Proxy:
    url: str
    port: int
    upstream: TenantUpstream

    def used(self, company: uuid.UUID = COMPANY_A) -> int:
        answer = httpx.get(
            self.url + "/assistant/ai-chat/usage",
            params={"companyId": str(company)},
            headers=bearer(KEY_A if company == COMPANY_A else KEY_B),
        )
        assert answer.status_code == 200, answer.text
        return int(answer.json()["tokensUsed"])

    def forwarded(self) -> int:
        return len(self.upstream.seen)


@contextmanager
def guarded(redis_url: str, **overrides: dict[str, Any]) -> Iterator[Proxy]:
    upstream = TenantUpstream()
    tables: dict[str, dict[str, Any]] = {
        "store": {"url": redis_url, "prefix": f"bg-tenant-{uuid.uuid4().hex[:8]}:"},
        "guard": {"routes": OPTED_IN, "body_timeout_seconds": 5},
        "proxy": {
            "upstream_api_key": UPSTREAM_KEY,
            "upstream_headers": {"OpenAI-Organization": "org-operator"},
        },
    }
    for table, values in overrides.items():
        tables[table] = {**tables.get(table, {}), **values}
    with serve(upstream) as upstream_url:
        app = build_app(settings_from_mapping(config(**tables)), upstream_url=upstream_url)
        with serve(app) as url:
            yield Proxy(url, httpx.URL(url).port or 80, upstream)


@pytest.fixture(scope="module")
def proxy(redis_url: str) -> Iterator[Proxy]:
    with guarded(redis_url) as target:
        yield target


def post(
    proxy: Proxy, path: str, body: object, key: str = KEY_A, timeout: float = 30
) -> httpx.Response:
    return httpx.post(proxy.url + path, json=body, headers=bearer(key), timeout=timeout)


# --------------------------------------------------------------------------- routes


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/batches"),
        ("POST", "/v1/messages/batches"),
        ("POST", "/v1/fine_tuning/jobs"),
        ("POST", "/v1/threads/runs"),
        ("POST", "/v1/realtime/client_secrets"),
        ("POST", "/v1/realtime/sessions"),
        ("POST", "/v1/images/edits"),
        ("POST", "/v1/audio/transcriptions"),
        ("POST", "/v1/assistants"),
        ("POST", "/v1/vector_stores"),
        ("POST", "/v1/uploads"),
        ("GET", "/v1/files"),
        ("GET", "/v1/batches"),
        ("GET", "/v1/chat/completions"),
        ("GET", "/v1/chat/completions/chatcmpl-1"),
        ("GET", "/v1/responses/resp_1"),
        ("DELETE", "/v1/responses/resp_1"),
        ("POST", "/v1/responses/resp_1/cancel"),
        ("GET", "/v1/vector_stores"),
        ("PUT", "/v1/chat/completions"),
    ],
)
def test_a_route_the_guard_cannot_charge_is_refused_before_the_upstream(
    proxy: Proxy, method: str, path: str
) -> None:
    before, forwarded = proxy.used(), proxy.forwarded()
    answer = httpx.request(
        method, proxy.url + path, content=CHAT_BODY, headers={**bearer(KEY_A), **JSON}
    )
    assert answer.status_code in (404, 405), answer.text
    error = assert_openai_error(answer.status_code, answer.headers, answer.content)
    assert error["code"] == "route_not_allowed"
    if answer.status_code == 404:
        assert path in error["message"] and "[[guard.routes]]" in error["message"]
    assert proxy.forwarded() == forwarded
    assert proxy.used() == before


def test_a_background_response_is_refused(proxy: Proxy) -> None:
    forwarded = proxy.forwarded()
    answer = post(proxy, "/v1/responses", {"model": "gpt-4o", "input": "hi", "background": True})
    assert answer.status_code == 400
    assert answer.json()["error"]["param"] == "background"
    assert proxy.forwarded() == forwarded


def test_opted_in_routes_are_charged_as_configured(proxy: Proxy) -> None:
    before = proxy.used()
    image = post(proxy, "/v1/images/generations", {"model": "gpt-image-1", "prompt": "a cat"})
    assert image.status_code == 200
    assert proxy.used() == before + IMAGE_USAGE["total_tokens"]  # the upstream's report
    speech = post(proxy, "/v1/audio/speech", {"model": "tts-1", "input": "hi", "voice": "x"})
    assert speech.status_code == 200
    assert proxy.used() == before + IMAGE_USAGE["total_tokens"] + 300  # flat
    moderation = post(proxy, "/v1/moderations", {"input": "hi"})
    assert moderation.status_code == 200
    assert proxy.used() == before + IMAGE_USAGE["total_tokens"] + 300  # explicitly free


@pytest.mark.parametrize(
    ("entry", "named"),
    [
        ({"method": "POST", "path": "/v1/batches", "charge": "usage"}, "tokens"),
        ({"method": "POST", "path": "/v1/batches", "charge": "flat", "tokens": 0}, "tokens"),
        ({"method": "POST", "path": "/v1/batches"}, "charge"),
        ({"method": "POST", "path": "/v1/batches", "charge": "free", "tokens": 5}, "tokens"),
        ({"method": "GET", "path": "/v1/files", "charge": "free"}, "path"),
        ({"method": "POST", "path": "/v1/chat/completions", "charge": "free"}, "already"),
        ({"method": "POST", "path": "/elsewhere/x", "charge": "free"}, "guard.paths"),
        ({"method": "POST", "path": "/v1/a//b", "charge": "free"}, "segment"),
        ({"method": "POST", "path": "/v1/x", "charge": "free", "price": 1}, "price"),
    ],
)
def test_no_route_can_be_configured_to_forward_uncharged_unless_marked_free(
    entry: dict[str, Any], named: str
) -> None:
    with pytest.raises(ConfigError, match=named):
        GuardSettings.from_table({"routes": [entry]})


# --------------------------------------------------------------------------- paths


@pytest.mark.parametrize(
    "path",
    [
        "/v1//chat/completions",
        "/v1/chat//completions",
        "/v1/chat/completions/",
        "/v1/chat/completions;x",
        "/v1/chat;x/completions",
        "/v1/Chat/Completions",
        "/v1/CHAT/COMPLETIONS",
        "/v1/chat/completions.",
        "/v1/chat/completions%20",
        "/v1/chat/completions%2e",
        "/v1/chat%2Fcompletions",
        "/v1/chat%2fcompletions",
        "/v1/chat%5Ccompletions",
        "/v1/chat\\completions",
        "/v1/%63hat/completions",
        "/v1/chat/completions%00",
    ],
)
def test_a_path_variant_is_never_forwarded(proxy: Proxy, path: str) -> None:
    """Whatever a server or proxy behind the guard would make of it, the guard forwards only
    the exact path it classified."""
    before, forwarded = proxy.used(), proxy.forwarded()
    head = request_head(
        "POST", path, proxy.port, {**bearer(KEY_A), **JSON}, body_length=len(CHAT_BODY)
    )
    answer = raw_exchange(proxy.port, head, [CHAT_BODY], timeout=10)
    assert answer.status is not None and 400 <= answer.status < 500, (path, answer)
    assert proxy.forwarded() == forwarded
    assert proxy.used() == before


def test_the_canonical_path_is_forwarded_byte_for_byte_and_charged(proxy: Proxy) -> None:
    before, forwarded = proxy.used(), proxy.forwarded()
    answer = post(proxy, "/v1/chat/completions", CHAT)
    assert answer.status_code == 200
    assert proxy.upstream.seen[forwarded].path == "/v1/chat/completions"
    assert proxy.used() == before + answer.json()["usage"]["total_tokens"]


# --------------------------------------------------------------------------- headers


def test_billing_headers_and_credentials_are_the_operators(proxy: Proxy) -> None:
    forwarded = proxy.forwarded()
    answer = httpx.post(
        proxy.url + "/v1/chat/completions",
        content=CHAT_BODY,
        headers={
            **bearer(KEY_A),
            **JSON,
            "OpenAI-Organization": "org-tenant",
            "OpenAI-Project": "proj-tenant",
            "X-Api-Key": "sk-tenant",
            "X-Budget-Company-Id": str(COMPANY_A),  # its own: allowed, and kept from upstream
        },
    )
    assert answer.status_code == 200, answer.text
    seen = proxy.upstream.seen[forwarded].headers
    assert seen["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert seen["openai-organization"] == "org-operator"
    assert "openai-project" not in seen and "x-api-key" not in seen
    assert "x-budget-company-id" not in seen


# --------------------------------------------------------------------------- disconnects


def _wait_for(condition: Any, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)


def test_a_client_that_leaves_before_the_first_byte_still_pays(proxy: Proxy) -> None:
    slow = {**CHAT, "model": SLOW_MODEL}
    before_b = proxy.used(COMPANY_B)
    stayed = post(proxy, "/v1/chat/completions", slow, key=KEY_B)
    assert stayed.status_code == 200
    cost = proxy.used(COMPANY_B) - before_b
    assert cost == stayed.json()["usage"]["total_tokens"]

    before = proxy.used()
    with pytest.raises(httpx.ReadTimeout):
        post(proxy, "/v1/chat/completions", slow, timeout=SLOW_SECONDS / 3)
    _wait_for(lambda: proxy.used() >= before + cost, SLOW_SECONDS + 5)
    assert proxy.used() == before + cost


async def test_a_client_that_leaves_mid_stream_pays_for_the_whole_stream(proxy: Proxy) -> None:
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    before_b = proxy.used(COMPANY_B)
    stayed = post(proxy, "/v1/chat/completions", body, key=KEY_B)
    cost = proxy.used(COMPANY_B) - before_b
    assert stayed.status_code == 200 and cost > 0

    before = proxy.used()
    async with (
        httpx.AsyncClient(timeout=30) as http,
        http.stream(
            "POST", proxy.url + "/v1/chat/completions", json=body, headers=bearer(KEY_A)
        ) as response,
    ):
        async for line in response.aiter_lines():
            if line.startswith("data: {"):
                break
    for _ in range(100):
        if proxy.used() >= before + cost:
            break
        await asyncio.sleep(0.05)
    assert proxy.used() == before + cost


def test_an_abandoned_answer_is_read_only_until_the_deadline(redis_url: str) -> None:
    """A client that leaves is charged at least its counted prompt even when the upstream
    never finishes within ``guard.abandoned_seconds``."""
    with guarded(redis_url, guard={"abandoned_seconds": 0.5}) as target:
        slow = {**CHAT, "model": SLOW_MODEL}
        before = target.used()
        with pytest.raises(httpx.ReadTimeout):
            post(target, "/v1/chat/completions", slow, timeout=0.2)
        _wait_for(lambda: target.used() > before, 5)
        charged = target.used() - before
        from budget_guard.counting import TokenCounter

        prompt = TokenCounter().count_request("/v1/chat/completions", orjson.dumps(slow))
        assert charged == prompt.input_tokens


# --------------------------------------------------------------------------- strict mode


def test_strict_reservations_cover_every_choice(redis_url: str) -> None:
    """Ten concurrent ``n: 50`` requests against a 1,000-token limit: each could cost about
    ten times what a one-choice reservation would hold."""
    with guarded(
        redis_url,
        guard={"strict": True},
        budget={"limits": {str(COMPANY_A): 1_000}},
    ) as target:
        body = {**CHAT, "n": 50, "max_tokens": 19}

        async def burst() -> list[int]:
            async with httpx.AsyncClient(timeout=30) as http:
                answers = await asyncio.gather(
                    *(
                        http.post(
                            target.url + "/v1/chat/completions", json=body, headers=bearer(KEY_A)
                        )
                        for _ in range(10)
                    )
                )
            return [a.status_code for a in answers]

        statuses = asyncio.run(burst())
        assert set(statuses) <= {200, 429}
        assert statuses.count(200) >= 1
        assert target.used() <= 1_000


def test_a_strict_hold_outlives_a_request_longer_than_its_ttl(redis_url: str) -> None:
    """A 1 s reservation TTL and a request of twice that: the hold is extended while the
    request runs, so a second request that would not fit beside it is still refused."""
    body = {**CHAT, "model": SLOW_MODEL, "max_tokens": 19}
    quick = {**CHAT, "max_tokens": 19}
    with guarded(
        redis_url,
        guard={"strict": True},
        store={"reservation_ttl_seconds": 1},
        budget={"limits": {str(COMPANY_A): 45}},
    ) as target:

        async def race() -> tuple[int, int]:
            chat = target.url + "/v1/chat/completions"
            async with httpx.AsyncClient(timeout=30, headers=bearer(KEY_A)) as http:
                slow = asyncio.ensure_future(http.post(chat, json=body))
                await asyncio.sleep(SLOW_SECONDS * 0.75)  # past the TTL, the slow one still live
                second = await http.post(chat, json=quick)
                return (await slow).status_code, second.status_code

        slow_status, second_status = asyncio.run(race())
        assert (slow_status, second_status) == (200, 429)
        assert 0 < target.used() <= 45


# --------------------------------------------------------------------------- full store


def test_a_full_memory_store_refuses_a_new_company(redis_url: str) -> None:
    with guarded(redis_url, store={"url": "memory://", "max_companies": 1}) as target:
        assert post(target, "/v1/chat/completions", CHAT).status_code == 200
        forwarded = target.forwarded()
        refused = post(target, "/v1/chat/completions", CHAT, key=KEY_B)
        assert refused.status_code == 503
        assert refused.json()["error"]["code"] == "budget_store_full"
        assert target.forwarded() == forwarded


# --------------------------------------------------------------------------- objects


def test_a_company_reaches_only_the_files_it_created(proxy: Proxy) -> None:
    created = post(proxy, "/v1/files", {"purpose": "batch"})
    assert created.status_code == 200
    file_id = created.json()["id"]
    forwarded = proxy.forwarded()
    for method, path in (
        ("GET", f"/v1/files/{file_id}"),
        ("GET", f"/v1/files/{file_id}/content"),
        ("DELETE", f"/v1/files/{file_id}"),
    ):
        other = httpx.request(method, proxy.url + path, headers=bearer(KEY_B))
        assert other.status_code == 404, other.text
        assert other.json()["error"]["code"] == "object_not_found"
        assert proxy.forwarded() == forwarded
    own = httpx.get(proxy.url + f"/v1/files/{file_id}", headers=bearer(KEY_A))
    assert own.status_code == 200
    assert proxy.forwarded() == forwarded + 1
    unknown = httpx.get(proxy.url + "/v1/files/file-never-made", headers=bearer(KEY_A))
    assert unknown.status_code == 404


def test_a_company_cannot_continue_another_companys_response(proxy: Proxy) -> None:
    first = post(proxy, "/v1/responses", {"model": "gpt-4o", "input": "remember 42"})
    assert first.status_code == 200
    response_id = first.json()["id"]
    forwarded = proxy.forwarded()
    follow_up = {"model": "gpt-4o", "input": "what number?", "previous_response_id": response_id}
    stolen = post(proxy, "/v1/responses", follow_up, key=KEY_B)
    assert stolen.status_code == 404
    assert proxy.forwarded() == forwarded
    own = post(proxy, "/v1/responses", follow_up)
    assert own.status_code == 200
    in_content = {
        **CHAT,
        "messages": [
            {"role": "user", "content": [{"type": "file", "file": {"file_id": "file-of-b"}}]}
        ],
    }
    assert post(proxy, "/v1/chat/completions", in_content).status_code == 404
    assert proxy.forwarded() == forwarded + 1


async def test_a_websocket_under_a_guarded_path_never_reaches_the_app() -> None:
    """The Realtime API's socket carries usage the guard cannot meter; a host app's socket
    routes under ``/v1/`` are closed with "policy violation" before the app sees them."""
    reached: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope["path"])

    guard = BudgetGuardMiddleware(
        app, ledger=Ledger(MemoryStore()), authenticator=ApiKeyAuthenticator([])
    )
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await guard({"type": "websocket", "path": "/v1/realtime", "headers": []}, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1008}]
    await guard({"type": "websocket", "path": "/elsewhere", "headers": []}, receive, send)
    assert reached == ["/elsewhere"]


# --------------------------------------------------------------------------- red-team findings


def raw_post(proxy: Proxy, path: str, body: bytes, key: str = KEY_A) -> httpx.Response:
    """A body sent byte for byte, as a hostile client writes it."""
    return httpx.post(proxy.url + path, content=body, headers={**bearer(key), **JSON}, timeout=30)


def test_an_escaped_key_names_the_same_object(proxy: Proxy) -> None:
    """``"previous_response_i\\u0064"`` is ``previous_response_id`` to every JSON parser."""
    first = post(proxy, "/v1/responses", {"model": "gpt-4o", "input": "remember 7"})
    response_id = first.json()["id"]
    forwarded = proxy.forwarded()
    escaped = (
        b'{"model":"gpt-4o","input":"what?","previous_response_i\\u0064":"'
        + response_id.encode()
        + b'"}'
    )
    assert raw_post(proxy, "/v1/responses", escaped, key=KEY_B).status_code == 404
    chat = (
        b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":[{"type":"file",'
        b'"file":{"file_i\\u0064":"file-of-someone"}}]}]}'
    )
    assert raw_post(proxy, "/v1/chat/completions", chat).status_code == 404
    item = {
        "model": "gpt-4o",
        "input": [{"type": "item_reference", "id": "msg_of_someone"}],
    }
    assert post(proxy, "/v1/responses", item).status_code == 404
    assert proxy.forwarded() == forwarded


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_the_items_a_response_produced_are_its_companys_to_send_back(
    proxy: Proxy, stream: bool
) -> None:
    """OpenAI loads an input item by its ``id`` (a stored reasoning item, whose content the
    client never saw): sending a response's items back is how a client keeps its context,
    and another company's items are another company's reasoning."""
    body = {"model": "gpt-4o", "input": "remember 5", "stream": stream}
    first = post(proxy, "/v1/responses", body)
    assert first.status_code == 200
    found = re.search(rb'"id":"resp_(\d+)"', first.content)
    assert found is not None
    number = found.group(1).decode()
    reasoning = {"type": "reasoning", "id": f"rs_{number}", "summary": []}
    cited = {"type": "container_file_citation", "container_id": f"cntr_{number}"}
    message = {
        "type": "message",
        "id": f"msg_{number}",
        "role": "assistant",
        "content": [
            {
                "type": "output_text",
                "text": "ok",
                "annotations": [{**cited, "file_id": f"cfile_{number}"}],
            }
        ],
    }
    reference = {"type": "item_reference", "id": f"msg_{number}"}
    forwarded = proxy.forwarded()
    next_turn = [reasoning, message, reference, {"role": "user", "content": "and then?"}]
    answer = post(proxy, "/v1/responses", {"model": "gpt-4o", "input": next_turn})
    assert answer.status_code == 200, answer.text
    assert proxy.forwarded() == forwarded + 1
    for item in (reasoning, message, reference):
        answer = post(proxy, "/v1/responses", {"model": "gpt-4o", "input": [item]}, key=KEY_B)
        assert answer.status_code == 404
        assert assert_openai_error(404, answer.headers, answer.content)["code"] == (
            "object_not_found"
        )
    assert proxy.forwarded() == forwarded + 1


def test_an_answer_the_tenant_wrote_gives_it_no_object(redis_url: str) -> None:
    """Ids are remembered from a model's answer on a built-in route only. An opted-in route
    can answer with what a tenant wrote, and LiteLLM answers a ``mock_response`` the request
    carries: through either, a tenant would claim ids nobody owns yet (the operator's)."""
    written = {"method": "GET", "path": "/v1/written", "charge": "usage", "tokens": 10}
    with guarded(redis_url, guard={"routes": [*OPTED_IN, written]}) as proxy:
        assert httpx.get(proxy.url + "/v1/written", headers=bearer(KEY_A)).status_code == 200
        for named in ("file-unowned", "cntr_unowned", "vs_unowned", "resp_unowned"):
            reference = {"type": "item_reference", "id": named}
            answer = post(proxy, "/v1/responses", {"model": "gpt-4o", "input": [reference]})
            assert answer.status_code == 404, named
        forwarded = proxy.forwarded()
        for key in ("mock_response", "mock_tool_calls"):
            answer = post(proxy, "/v1/chat/completions", {**CHAT, key: WRITTEN})
            assert answer.status_code == 400
            assert assert_openai_error(400, answer.headers, answer.content)["param"] == key
        assert proxy.forwarded() == forwarded


def test_the_clients_own_data_names_no_object(proxy: Proxy) -> None:
    """Ids in a request's ``metadata`` or a tool call's ``input`` are the client's labels,
    which no upstream looks up: they are forwarded, not answered 404."""
    forwarded = proxy.forwarded()
    tagged = {
        "model": "gpt-4o",
        "input": "hello",
        "metadata": {"conversation_id": "ticket-7", "thread_id": "slack-42"},
    }
    assert post(proxy, "/v1/responses", tagged).status_code == 200
    tool_turn = {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "user", "content": "read it"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "read", "arguments": '{"file_id": "local-1"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "its text"},
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "read",
                    "parameters": {
                        "type": "object",
                        "properties": {"file_id": {"type": "string", "examples": ["a-1"]}},
                    },
                },
            }
        ],
        "metadata": {"file_id": "local-1"},
    }
    assert post(proxy, "/v1/chat/completions", tool_turn).status_code == 200
    assert proxy.forwarded() == forwarded + 2


def test_a_key_named_twice_is_refused_before_the_upstream(proxy: Proxy) -> None:
    """An upstream that keeps the first of two values would continue another company's
    response behind the caller's own id (or run a dearer model than the one charged)."""
    own = post(proxy, "/v1/responses", {"model": "gpt-4o", "input": "remember 9"}).json()["id"]
    forwarded = proxy.forwarded()
    twice = (
        b'{"model":"gpt-4o","input":"what?","previous_response_id":"resp_of_someone",'
        b'"previous_response_i\\u0064":"' + own.encode() + b'"}'
    )
    models = b'{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"model":"gpt-4o-mini"}'
    for path, body, param in (
        ("/v1/responses", twice, "previous_response_id"),
        ("/v1/chat/completions", models, "model"),
    ):
        answer = raw_post(proxy, path, body)
        assert answer.status_code == 400
        assert assert_openai_error(400, answer.headers, answer.content)["param"] == param
    files = b'{"purpose":"batch","file_id":"file-of-someone","file_id":"file-own"}'
    assert raw_post(proxy, "/v1/moderations", files).status_code == 400
    assert proxy.forwarded() == forwarded


def test_a_key_in_another_case_is_refused_or_checked_before_the_upstream(proxy: Proxy) -> None:
    """Go's JSON decoder (Ollama, LocalAI, Envoy AI Gateway) reads ``"Model"``, ``"N"`` or
    ``"PREVIOUS_RESPONSE_ID"`` as the field they fold to, the Kelvin sign and the long s
    included (its v2 ignores "_" too; Go's form binders read a field ``N``). A field the
    guard reads, named another way, is refused; an object reference named another way is
    checked as the company's own, like any other."""
    first = post(proxy, "/v1/responses", {"model": "gpt-4o", "input": "remember 11"})
    response_id = first.json()["id"]
    forwarded = proxy.forwarded()
    for path, body, param in (
        (
            "/v1/chat/completions",
            {**CHAT, "Model": "o3"},
            "Model",
        ),
        (
            "/v1/chat/completions",
            {"model": "gpt-4o-mini", "messages": [{"role": "user", "Content": "x" * 9_000}]},
            "messages.[0].Content",
        ),
        ("/v1/chat/completions", {**CHAT, "\u017fTREAM": True}, "\u017fTREAM"),
        ("/v1/images/generations", {"model": "dall-e-2", "prompt": "a cat", "N": 10}, "N"),
    ):
        answer = post(proxy, path, body)
        assert answer.status_code == 400, answer.text
        assert assert_openai_error(400, answer.headers, answer.content)["param"] == param
    folded = "PREVIOU\u017f_RESPONSE_ID"
    for key in ("Previous_Response_Id", folded, "previousResponseId"):
        stolen = {"model": "gpt-4o", "input": "what number?", key: response_id}
        assert post(proxy, "/v1/responses", stolen, key=KEY_B).status_code == 404
    form = httpx.post(
        proxy.url + "/v1/images/variations",
        headers=bearer(KEY_A),
        files={"image": ("a.png", b"\x89PNG" + b"\x00" * 100, "image/png")},
        data={"model": "dall-e-2", "N": "10"},
        timeout=30,
    )
    assert form.status_code == 400, form.text
    assert proxy.forwarded() == forwarded
    own = {"model": "gpt-4o", "input": "what number?", folded: response_id}
    assert post(proxy, "/v1/responses", own).status_code == 200
    assert proxy.forwarded() == forwarded + 1


def test_an_escaped_n_is_still_every_output(proxy: Proxy) -> None:
    before = proxy.used()
    answer = raw_post(proxy, "/v1/images/variations", b'{"model":"dall-e-2","\\u006e":10}')
    assert answer.status_code == 200
    assert proxy.used() == before + 10 * 1_000  # no usage reported: tokens per image


def test_an_uploaded_n_is_still_every_output(proxy: Proxy) -> None:
    """Image variations are multipart uploads: their ``n`` is read there too."""
    before = proxy.used()
    image = {"image": ("a.png", b"\x89PNG" + b"\x00" * 40_000, "image/png")}
    answer = httpx.post(
        proxy.url + "/v1/images/variations",
        headers=bearer(KEY_A),
        files=image,
        data={"model": "dall-e-2", "n": "10"},
        timeout=30,
    )
    assert answer.status_code == 200
    assert proxy.used() == before + 10 * 1_000  # no usage reported: tokens per image
    url_encoded = httpx.post(
        proxy.url + "/v1/images/variations",
        headers=bearer(KEY_A),
        data={"model": "dall-e-2", "n": "10"},  # a form without a file: URL-encoded
        timeout=30,
    )
    assert url_encoded.status_code == 200
    assert proxy.used() == before + 2 * 10 * 1_000
    forwarded = proxy.forwarded()
    for data in ({"n": "ten"}, {"n": ["1", "10"]}):
        refused = httpx.post(
            proxy.url + "/v1/images/variations",
            headers=bearer(KEY_A),
            files=image,
            data=data,
            timeout=30,
        )
        assert refused.status_code == 400
        assert assert_openai_error(400, refused.headers, refused.content)["param"] == "n"
    cut = b'--b\r\nContent-Disposition: form-data; name="n"\r\n\r\n10\r\n--b'
    headers = {**bearer(KEY_A), "Content-Type": "multipart/form-data; boundary=b"}
    answer = httpx.post(proxy.url + "/v1/images/variations", content=cut, headers=headers)
    assert answer.status_code == 400
    assert proxy.forwarded() == forwarded


def test_a_json_body_the_guard_cannot_read_is_refused(proxy: Proxy) -> None:
    """What the guard cannot parse an upstream might parse differently (NaN, a BOM)."""
    forwarded = proxy.forwarded()
    for body in (b'{"input":"x","a":NaN}', b'\xef\xbb\xbf{"input":"x"}', b'{"input":"x"'):
        answer = raw_post(proxy, "/v1/moderations", body)
        assert answer.status_code == 400, (body, answer.text)
    assert proxy.forwarded() == forwarded


def test_a_free_route_body_is_bounded_like_a_counted_one(redis_url: str) -> None:
    with guarded(redis_url, guard={"max_body_array_items": 1_000}) as target:
        forwarded = target.forwarded()
        body = {"model": "claude-x", "messages": [], "a": [[] for _ in range(2_000)]}
        answer = post(target, "/v1/messages/count_tokens", body)
        assert answer.status_code == 400
        assert "max_body_array_items" in answer.json()["error"]["message"]
        assert target.forwarded() == forwarded


def test_an_upstream_that_does_not_answer_in_time_still_charges_the_prompt(
    redis_url: str,
) -> None:
    with guarded(redis_url, proxy={"timeout_seconds": 0.5}) as target:
        slow = {**CHAT, "model": SLOW_MODEL}
        before = target.used()
        answer = post(target, "/v1/chat/completions", slow)
        assert answer.status_code == 504
        assert "x-budget-guard-upstream-may-bill" not in answer.headers
        from budget_guard.counting import TokenCounter

        prompt = TokenCounter().count_request("/v1/chat/completions", orjson.dumps(slow))
        assert target.used() == before + prompt.input_tokens


def test_the_operators_account_headers_do_not_reach_the_tenant(proxy: Proxy) -> None:
    answer = post(proxy, "/v1/chat/completions", CHAT)
    assert answer.status_code == 200
    for name in ("openai-organization", "openai-project", "x-ratelimit-remaining-requests"):
        assert name not in answer.headers
    assert "org-operator-secret" not in str(answer.headers)


def test_strict_mode_holds_a_context_window_for_stored_context(redis_url: str) -> None:
    """The guard cannot count what a previous response brings into the context, so strict
    mode holds ``guard.reference_reservation`` for it."""
    with guarded(
        redis_url, guard={"strict": True}, budget={"limits": {str(COMPANY_A): 100_000}}
    ) as target:
        first = post(target, "/v1/responses", {"model": "gpt-4o", "input": "hi"})
        assert first.status_code == 200
        follow_up = {
            "model": "gpt-4o",
            "input": "and?",
            "max_output_tokens": 16,
            "previous_response_id": first.json()["id"],
        }
        assert post(target, "/v1/responses", follow_up).status_code == 429
    with guarded(
        redis_url,
        guard={"strict": True, "reference_reservation": 1_000},
        budget={"limits": {str(COMPANY_A): 100_000}},
    ) as target:
        first = post(target, "/v1/responses", {"model": "gpt-4o", "input": "hi"})
        follow_up["previous_response_id"] = first.json()["id"]
        assert post(target, "/v1/responses", follow_up).status_code == 200


def test_idempotency_keys_go_upstream_scoped_to_the_company(proxy: Proxy) -> None:
    forwarded = proxy.forwarded()
    for key in (KEY_A, KEY_B):
        answer = httpx.post(
            proxy.url + "/v1/chat/completions",
            content=CHAT_BODY,
            headers={**bearer(key), **JSON, "Idempotency-Key": "same-key"},
        )
        assert answer.status_code == 200
    seen = [s.headers["idempotency-key"] for s in proxy.upstream.seen[forwarded:]]
    assert seen == [f"{COMPANY_A.hex}-same-key", f"{COMPANY_B.hex}-same-key"]


FINE_TUNING = [
    {"method": "POST", "path": "/v1/fine_tuning/jobs", "charge": "flat", "tokens": 1_000,
     "creates": True},
    {"method": "GET", "path": "/v1/fine_tuning/jobs/{job_id}", "charge": "free"},
    {"method": "GET", "path": "/v1/fine_tuning/jobs/{job_id}/checkpoints", "charge": "free"},
    {"method": "DELETE", "path": "/v1/models/{model}", "charge": "free"},
]  # fmt: skip


def _listed(proxy: Proxy, key: str) -> list[str]:
    answer = httpx.get(proxy.url + "/v1/models", headers=bearer(key))
    assert answer.status_code == 200, answer.text
    assert int(answer.headers["content-length"]) == len(answer.content)
    return [model["id"] for model in answer.json()["data"]]


def test_a_fine_tuned_model_is_its_companys_alone(redis_url: str) -> None:
    """A fine-tuned model is trained on one company's data, and the operator's key can use,
    list and delete every company's. It is the company's once the guard has seen it in the
    answer to the company's own job; no other company can use it, see it listed, read it or
    delete it, and a tenant's file shaped like a job answer claims nothing."""
    with guarded(redis_url, guard={"routes": [*OPTED_IN, *FINE_TUNING]}) as proxy:
        file_id = post(proxy, "/v1/files", {"purpose": "fine-tune"}).json()["id"]
        job = post(
            proxy, "/v1/fine_tuning/jobs", {"model": "gpt-4o-mini", "training_file": file_id}
        )
        assert job.status_code == 200, job.text
        job_id = job.json()["id"]
        model = proxy.upstream.models[-1]

        # Before the company has asked about its job, the model is nobody's: B's file shaped
        # like the job's answer does not make it B's, and A cannot use it yet either.
        upload = post(proxy, "/v1/files", {"purpose": "batch"}, key=KEY_B).json()["id"]
        content = httpx.get(proxy.url + f"/v1/files/{upload}/content", headers=bearer(KEY_B))
        assert content.json()["fine_tuned_model"] == model
        assert (
            post(proxy, "/v1/chat/completions", {**CHAT, "model": model}, KEY_B).status_code == 404
        )
        assert post(proxy, "/v1/chat/completions", {**CHAT, "model": model}).status_code == 404
        assert model not in _listed(proxy, KEY_A)

        assert (
            httpx.get(
                proxy.url + f"/v1/fine_tuning/jobs/{job_id}", headers=bearer(KEY_B)
            ).status_code
            == 404
        )
        done = httpx.get(proxy.url + f"/v1/fine_tuning/jobs/{job_id}", headers=bearer(KEY_A))
        assert done.json()["fine_tuned_model"] == model
        checkpoints = httpx.get(
            proxy.url + f"/v1/fine_tuning/jobs/{job_id}/checkpoints", headers=bearer(KEY_A)
        )
        checkpoint = checkpoints.json()["data"][0]["fine_tuned_model_checkpoint"]

        forwarded = proxy.forwarded()
        for name in (model, checkpoint, model.upper(), "openai/" + model):
            stolen = post(proxy, "/v1/chat/completions", {**CHAT, "model": name}, KEY_B)
            assert stolen.status_code == 404, name
            assert stolen.json()["error"]["code"] == "object_not_found"
        responses = {"model": model, "input": "hi"}
        assert post(proxy, "/v1/responses", responses, KEY_B).status_code == 404
        for method in ("GET", "DELETE"):
            read = httpx.request(method, proxy.url + f"/v1/models/{model}", headers=bearer(KEY_B))
            assert read.status_code == 404, method
        assert proxy.forwarded() == forwarded
        assert model not in _listed(proxy, KEY_B)
        assert checkpoint not in _listed(proxy, KEY_B)
        assert "gpt-4o-mini" in _listed(proxy, KEY_B)

        used = proxy.used(COMPANY_A)
        for name in (model, checkpoint):
            own = post(proxy, "/v1/chat/completions", {**CHAT, "model": name})
            assert own.status_code == 200, own.text
        assert proxy.used(COMPANY_A) > used  # used, and charged
        assert (
            httpx.get(proxy.url + f"/v1/models/{model}", headers=bearer(KEY_A)).status_code == 200
        )
        assert {model, checkpoint} <= set(_listed(proxy, KEY_A))
        results = httpx.get(
            proxy.url + f"/v1/files/file-result-{job_id[6:]}", headers=bearer(KEY_A)
        )
        assert results.status_code == 200  # the job's result file is the company's too
        deleted = httpx.delete(proxy.url + f"/v1/models/{model}", headers=bearer(KEY_A))
        assert deleted.status_code == 200


def _owned_model(proxy: Proxy) -> str:
    """A fine-tuned model company A owns: its job created and read back through the guard."""
    file_id = post(proxy, "/v1/files", {"purpose": "fine-tune"}).json()["id"]
    job = post(proxy, "/v1/fine_tuning/jobs", {"model": "gpt-4o-mini", "training_file": file_id})
    done = httpx.get(proxy.url + f"/v1/fine_tuning/jobs/{job.json()['id']}", headers=bearer(KEY_A))
    return str(done.json()["fine_tuned_model"])


def test_a_fine_tuned_model_cannot_be_named_another_way(redis_url: str) -> None:
    """Upstreams find a model in more places than a body's ``model``: LiteLLM in a deployment
    path, in the query string, in each of a comma-separated list and in ``fallbacks``, and in
    a form on any route; Azure names fine-tuned models ``<base>.ft-<id>``. None of them lets
    another company reach a company's model, and none of them is forwarded."""
    azure = "gpt-35-turbo-0613.ft-b044a9d3cf9c4228b5d393567f693b83"
    with guarded(redis_url, guard={"routes": [*OPTED_IN, *FINE_TUNING]}) as proxy:
        model = _owned_model(proxy)
        forwarded = proxy.forwarded()
        attempts: list[tuple[str, dict[str, Any], int]] = [
            (f"/v1/deployments/{model}/chat/completions", CHAT, 404),
            (f"/v1/chat/completions?model={model}", CHAT, 400),
            (f"/v1/chat/completions?Deployment_Id={model}", CHAT, 400),
            ("/v1/chat/completions?extra=1", CHAT, 400),
            ("/v1/chat/completions", {**CHAT, "model": f"gpt-4o-mini,{model}"}, 400),
            ("/v1/chat/completions", {**CHAT, "model": f"gpt-4o-mini|{model}"}, 404),
            ("/v1/chat/completions", {**CHAT, "fallbacks": [model]}, 400),
            ("/v1/chat/completions", {**CHAT, "context_window_fallbacks": [model]}, 400),
            ("/v1/chat/completions", {**CHAT, "deployment_id": model}, 400),
            (
                "/v1/chat/completions",
                {**CHAT, "router_settings_override": {"fallbacks": [{"gpt-4o-mini": [model]}]}},
                400,
            ),
            ("/v1/chat/completions", {**CHAT, "extra_body": {"model": "o1-pro"}}, 400),
            ("/v1/chat/completions", {**CHAT, "timeout": 0.2, "num_retries": 30}, 400),
            ("/v1/chat/completions?beta=true;model=x", CHAT, 400),
            ("/v1/chat/completions", {**CHAT, "model": azure}, 404),
            (f"/v1/models/{azure}", {}, 404),
        ]
        for path, body, status in attempts:
            if path.startswith("/v1/models/"):
                answer = httpx.get(proxy.url + path, headers=bearer(KEY_B))
            else:
                answer = post(proxy, path, body, KEY_B)
            assert answer.status_code == status, (path, body, answer.text)
            error = assert_openai_error(status, answer.headers, answer.content)
            if status == 400 and ";" not in path:
                assert error["param"], answer.text  # the refusal names what to remove
        for path in ("/v1/moderations", "/v1/messages/count_tokens"):
            form = httpx.post(
                proxy.url + path, data={"model": model, "input": "hi"}, headers=bearer(KEY_B)
            )
            assert form.status_code == 404, (path, form.text)
            listed = httpx.post(
                proxy.url + path, data={"fallbacks[]": model}, headers=bearer(KEY_B)
            )
            assert listed.status_code == 400, (path, listed.text)
        assert proxy.forwarded() == forwarded

        own = post(proxy, f"/v1/deployments/{model}/chat/completions", CHAT)
        assert own.status_code == 200, own.text
        azure_api = post(proxy, "/v1/chat/completions?api-version=2024-10-21", CHAT)
        assert azure_api.status_code == 200, azure_api.text
        assert proxy.upstream.seen[-1].path == "/v1/chat/completions"


@pytest.mark.parametrize(
    ("path", "field", "value"),
    [
        (
            "/v1/deployments/gpt-4o/chat/completions?api-version=2024-10-21",
            "data_sources",  # Azure searches any index the operator's identity can read
            [{"type": "azure_search", "parameters": {"index_name": "company-b"}}],
        ),
        ("/v1/chat/completions", "models", ["gpt-4o-mini", "o1-pro"]),  # OpenRouter
        ("/v1/chat/completions", "n_predict", 100_000),  # llama.cpp, past the held cap
        ("/v1/chat/completions", "extraBody", {"model": "o1-pro"}),
        ("/v1/completions", "chat_template", "{{ messages }}"),
    ],
)
def test_fields_an_upstream_reads_beyond_the_api_are_refused(
    proxy: Proxy, path: str, field: str, value: object
) -> None:
    forwarded = proxy.forwarded()
    prompt = {"model": "gpt-3.5-turbo-instruct", "prompt": "hi"}
    body = {**(prompt if path == "/v1/completions" else CHAT), field: value}
    answer = post(proxy, path, body)
    assert assert_openai_error(400, answer.headers, answer.content)["param"] == field
    assert proxy.forwarded() == forwarded
