"""The ``[endpoint]`` table, and which paths an endpoint claims."""

from __future__ import annotations

from typing import Any

import pytest
from endpoint_support import PATH, api_keys
from starlette.routing import Route

from budget_guard.budget.ledger import Ledger
from budget_guard.budget.window import ConfigError
from budget_guard.endpoint import EndpointSettings, UsageEndpoint
from budget_guard.stores import MemoryStore
from budget_guard.wire import TextCase


def _endpoint(settings: EndpointSettings | None = None) -> UsageEndpoint:
    return UsageEndpoint(Ledger(MemoryStore()), api_keys(), settings=settings)


def test_defaults() -> None:
    settings = EndpointSettings.from_table({})
    assert settings == EndpointSettings(
        path=PATH,
        max_body_bytes=65536,
        text_case=TextCase.CAMEL,
        enabled=True,
        openapi_path=PATH + "/openapi.json",
    )


def test_every_key() -> None:
    settings = EndpointSettings.from_table(
        {
            "path": "/budget/usage",
            "max_body_bytes": 4096,
            "text_case": "pascal",
            "enabled": False,
            "openapi_path": "/budget/openapi.json",
            "predefined_routes": False,
        }
    )
    assert settings == EndpointSettings(
        "/budget/usage", 4096, TextCase.PASCAL, False, "/budget/openapi.json", False
    )
    assert EndpointSettings.from_table({"text_case": "CamelCase"}).text_case is TextCase.CAMEL


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"path": "assistant/usage"}, "endpoint.path"),
        ({"path": "/usage/"}, "endpoint.path"),
        ({"path": "/usage.json"}, "endpoint.path"),
        ({"path": "/us age"}, "endpoint.path"),
        ({"path": 5}, "endpoint.path"),
        ({"max_body_bytes": 0}, "endpoint.max_body_bytes"),
        ({"max_body_bytes": "64k"}, "endpoint.max_body_bytes"),
        ({"max_body_bytes": True}, "endpoint.max_body_bytes"),
        ({"text_case": "snake"}, "endpoint.text_case"),
        ({"text_case": 1}, "endpoint.text_case"),
        ({"enabled": "yes"}, "endpoint.enabled"),
        ({"predefined_routes": 1}, "endpoint.predefined_routes"),
        ({"openapi_path": "openapi.json"}, "endpoint.openapi_path"),
        ({"openapi_path": PATH}, "endpoint.openapi_path"),
        ({"pathh": "/x"}, "endpoint.pathh"),
    ],
)
def test_a_bad_value_names_its_key(table: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        EndpointSettings.from_table(table)


def test_matches_the_path_its_suffixes_the_predefined_routes_and_the_document() -> None:
    endpoint = _endpoint()
    for path in (
        PATH,
        PATH + ".json",
        PATH + ".jsv",
        PATH + "/openapi.json",
        "/api/RecordAiChatUsage",
        "/json/reply/RecordAiChatUsage",
        "/jsv/reply/RecordAiChatUsage",
    ):
        assert endpoint.matches(path), path
    for path in (PATH + "/", PATH + ".xml", "/assistant/ai-chat", "/v1/chat/completions", ""):
        assert not endpoint.matches(path), path


def test_routes_cover_exactly_the_matched_paths() -> None:
    endpoint = _endpoint(EndpointSettings(predefined_routes=False))
    routes = endpoint.routes()
    assert all(isinstance(route, Route) for route in routes)
    paths = {route.path for route in routes if isinstance(route, Route)}
    assert paths == {PATH, PATH + ".json", PATH + ".jsv", PATH + "/openapi.json"}
    assert not endpoint.matches("/api/RecordAiChatUsage")


def test_a_disabled_endpoint_claims_nothing() -> None:
    endpoint = _endpoint(EndpointSettings(enabled=False))
    assert not endpoint.matches(PATH)
    assert not endpoint.matches(PATH + "/openapi.json")
    assert endpoint.routes() == []
