"""The OpenAPI document: served, valid OpenAPI 3.1, and true to what the endpoint answers."""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema
import pytest
from endpoint_support import ADMIN_KEY, PATH, Serve, bearer, decode
from openapi_spec_validator import validate

from budget_guard.endpoint import EndpointSettings, openapi_document
from budget_guard.wire import TextCase

CONTRACT_ERRORS = {"400", "401", "403", "405", "408", "413", "415", "422", "429", "500", "503"}


def _validator(document: dict[str, Any], schema_name: str) -> jsonschema.Draft202012Validator:
    """A validator for one component schema, resolving ``#/components/...`` in the document."""
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": document["components"]}
    return jsonschema.Draft202012Validator(schema)


def test_served_and_valid(serve_endpoint: Serve) -> None:
    url = serve_endpoint()
    response = httpx.get(url + PATH + "/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    document = response.json()
    validate(document)
    assert document["openapi"].startswith("3.1")
    assert document == openapi_document(EndpointSettings())


def test_both_operations_both_dtos_every_error_status() -> None:
    document = openapi_document(EndpointSettings())
    operations = document["paths"][PATH]
    assert set(operations) == {"post", "get"}
    assert set(operations["post"]["responses"]) == {"200"} | CONTRACT_ERRORS
    assert set(operations["get"]["responses"]) == {"200", "400", "401", "403", "405", "500", "503"}
    schemas = document["components"]["schemas"]
    assert {"RecordAiChatUsage", "AiChatUsageResponse", "ResponseStatus", "ResponseError"} <= set(
        schemas
    )
    assert schemas["RecordAiChatUsage"]["required"] == ["TokensUsed"]
    for operation in operations.values():
        for status, answer in operation["responses"].items():
            assert set(answer["content"]) == {"application/json", "text/jsv"}, status


@pytest.mark.parametrize("case", [TextCase.CAMEL, TextCase.PASCAL])
def test_valid_for_every_setting(case: TextCase) -> None:
    settings = EndpointSettings(path="/usage", text_case=case, openapi_path="/docs/openapi.json")
    document = openapi_document(settings)
    validate(document)
    assert "/usage" in document["paths"]
    names = document["components"]["schemas"]["AiChatUsageResponse"]["properties"]
    assert ("TokensUsed" in names) is (case is TextCase.PASCAL)


def test_live_answers_match_the_documented_schemas(serve_endpoint: Serve) -> None:
    url = serve_endpoint()
    document = httpx.get(url + PATH + "/openapi.json").json()
    success = _validator(document, "AiChatUsageSuccess")
    error = _validator(document, "AiChatUsageError")
    answers = [
        httpx.post(url + PATH, json={"tokensUsed": 10}, headers=bearer()),
        httpx.get(url + PATH, headers=bearer()),
        httpx.post(url + PATH, json={"tokensUsed": -1}, headers=bearer()),
        httpx.post(url + PATH, json={"tokensUsed": 1}),
        httpx.post(url + PATH, json={"tokensUsed": 1}, headers=bearer(ADMIN_KEY)),
        httpx.put(url + PATH, headers=bearer()),
        httpx.post(url + PATH, content=b"x", headers=bearer(**{"Content-Type": "text/plain"})),
    ]
    operations = document["paths"][PATH]
    for answer in answers:
        # A PUT is not an operation; its 405 is documented on both that are.
        operation = operations.get(answer.request.method.lower(), operations["post"])
        documented = operation["responses"]
        assert str(answer.status_code) in documented
        (success if answer.status_code == 200 else error).validate(decode(answer))


def test_openapi_path_is_configurable_or_off(serve_endpoint: Serve) -> None:
    url = serve_endpoint(settings=EndpointSettings(openapi_path="/budget/openapi.json"))
    assert httpx.get(url + "/budget/openapi.json").status_code == 200
    assert httpx.get(url + "/openapi.json").status_code == 404
    url = serve_endpoint(settings=EndpointSettings(openapi_path=""))
    assert httpx.get(url + "/openapi.json").status_code == 404
