"""The endpoint as a bare ASGI app: the protocol corners a live HTTP client cannot reach."""

from __future__ import annotations

from typing import Any

from endpoint_support import COMPANY_A, PATH, USER_A_KEY, api_keys

from budget_guard.budget.ledger import Ledger
from budget_guard.config import settings_from_mapping
from budget_guard.endpoint import EndpointSettings, UsageEndpoint
from budget_guard.stores import MemoryStore
from budget_guard.wire import TextCase


def _endpoint() -> UsageEndpoint:
    return UsageEndpoint(Ledger(MemoryStore()), api_keys())


async def _run(
    endpoint: UsageEndpoint, scope: dict[str, Any], incoming: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    pending = list(incoming)

    async def receive() -> dict[str, Any]:
        return pending.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await endpoint(scope, receive, send)
    return sent


def _http_scope(method: str = "POST", **extra: Any) -> dict[str, Any]:
    return {
        "type": "http",
        "method": method,
        "path": PATH,
        "root_path": "",
        "query_string": b"",
        "headers": [(b"authorization", f"Bearer {USER_A_KEY}".encode())],
        **extra,
    }


async def test_lifespan_is_answered() -> None:
    sent = await _run(
        _endpoint(),
        {"type": "lifespan"},
        [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}],
    )
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


async def test_websockets_are_refused() -> None:
    sent = await _run(_endpoint(), {"type": "websocket", "path": PATH}, [])
    assert sent == [{"type": "websocket.close", "code": 1008}]


async def test_a_client_that_leaves_mid_body_gets_nothing_and_records_nothing() -> None:
    endpoint = _endpoint()
    incoming = [
        {"type": "http.request", "body": b'{"tokensUsed":', "more_body": True},
        {"type": "http.disconnect"},
    ]
    assert await _run(endpoint, _http_scope(), incoming) == []
    snapshot = await endpoint.ledger.snapshot(COMPANY_A)
    assert snapshot.tokens_used == 0


async def test_a_body_in_many_pieces_is_joined() -> None:
    endpoint = _endpoint()
    incoming = [
        {"type": "http.request", "body": b'{"tokens', "more_body": True},
        {"type": "http.request", "body": b"", "more_body": True},
        {"type": "http.request", "body": b'Used":12}', "more_body": False},
    ]
    sent = await _run(endpoint, _http_scope(), incoming)
    assert sent[0]["status"] == 200
    assert b'"tokensUsed":12' in sent[1]["body"]


async def test_the_root_path_of_a_mount_or_proxy_prefix_is_ignored() -> None:
    scope = _http_scope("GET", path="/prefix" + PATH, root_path="/prefix")
    endpoint = _endpoint()
    assert endpoint.matches_scope(scope)
    assert not endpoint.matches(scope["path"])
    sent = await _run(endpoint, scope, [])
    assert sent[0]["status"] == 200


def test_settings_come_from_the_endpoint_table_of_the_config() -> None:
    settings = settings_from_mapping({"endpoint": {"text_case": "pascal", "max_body_bytes": 100}})
    endpoint = EndpointSettings.from_table(settings.table("endpoint"))
    assert endpoint.text_case is TextCase.PASCAL
    assert endpoint.max_body_bytes == 100
    assert EndpointSettings.from_table(settings_from_mapping({}).table("endpoint")) == (
        EndpointSettings()
    )
