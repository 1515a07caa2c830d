"""The admin limit routes, as an operator and a tenant see them over HTTP."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.limits.support import (
    ADMIN_KEY,
    COMPANY,
    LIMITS,
    USAGE,
    admin,
    config,
    servers,
    user,
)


@pytest.fixture
def two_servers(redis_url: str) -> Iterator[list[str]]:
    with servers(2, config(redis_url, f"limits-{uuid.uuid4().hex[:8]}:")) as urls:
        yield urls


def test_an_admin_sets_reads_lists_and_clears_a_limit(
    two_servers: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    a, _ = two_servers
    with httpx.Client(base_url=a, headers=admin()) as http:
        read = http.get(LIMITS, params={"companyId": str(COMPANY)}).json()
        assert read == {"companyId": COMPANY.hex, "tokenLimit": 1000, "limitSource": "default"}
        with caplog.at_level("INFO", logger="budget_guard.limits"):
            changed = http.put(LIMITS, json={"companyId": str(COMPANY), "tokenLimit": 5000})
        assert changed.status_code == 200
        assert changed.json() == {
            "companyId": COMPANY.hex,
            "tokenLimit": 5000,
            "overrideTokenLimit": 5000,
            "limitSource": "override",
        }
        [record] = [r for r in caplog.records if r.name == "budget_guard.limits"]
        assert (record.changed_by, record.old_limit, record.new_limit) == ("ops-alice", None, 5000)  # type: ignore[attr-defined]
        assert ADMIN_KEY not in caplog.text
        listed = http.get(LIMITS).json()
        assert listed == {"results": [{"companyId": COMPANY.hex, "tokenLimit": 5000}]}
        usage = http.get(USAGE, params={"companyId": str(COMPANY)}).json()
        assert usage["tokenLimit"] == 5000
        cleared = http.delete(LIMITS, params={"companyId": str(COMPANY)}).json()
        assert cleared["previousOverrideTokenLimit"] == 5000
        assert cleared["tokenLimit"] == 1000 and "overrideTokenLimit" not in cleared
        assert http.get(LIMITS).json() == {"results": []}


def test_a_change_on_one_server_is_in_force_on_the_other_within_a_second(
    two_servers: list[str],
) -> None:
    a, b = two_servers
    with httpx.Client(headers=admin()) as http:
        params = {"companyId": str(COMPANY)}
        assert http.get(b + USAGE, params=params).json()["tokenLimit"] == 1000  # b caches it
        http.put(a + LIMITS, json={"CompanyId": str(COMPANY), "TokenLimit": 7})
        changed_at = time.monotonic()
        while http.get(b + USAGE, params=params).json()["tokenLimit"] != 7:
            assert time.monotonic() - changed_at < 1.0, "not visible on the other server"
            time.sleep(0.02)


def test_a_user_key_is_forbidden_even_for_its_own_company(two_servers: list[str]) -> None:
    a, _ = two_servers
    with httpx.Client(base_url=a, headers=user()) as http:
        for response in (
            http.get(LIMITS),
            http.get(LIMITS, params={"companyId": str(COMPANY)}),
            http.put(LIMITS, json={"companyId": str(COMPANY), "tokenLimit": 10**9}),
            http.delete(LIMITS, params={"companyId": str(COMPANY)}),
        ):
            assert response.status_code == 403
            assert response.json()["responseStatus"]["errorCode"] == "Forbidden"
        assert http.get(USAGE).json()["tokenLimit"] == 1000
    assert httpx.get(a + LIMITS).status_code == 401


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        ({"tokenLimit": 5}, "NotEmpty", "CompanyId"),
        ({"companyId": str(COMPANY)}, "NotEmpty", "TokenLimit"),
        ({"companyId": str(COMPANY), "tokenLimit": -1}, "InclusiveBetween", "TokenLimit"),
        ({"companyId": str(COMPANY), "tokenLimit": 2**31}, "InclusiveBetween", "TokenLimit"),
        ({"companyId": str(COMPANY), "tokenLimit": 1.5}, "SerializationException", "TokenLimit"),
        ({"companyId": "acme", "tokenLimit": 5}, "SerializationException", "CompanyId"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(
    two_servers: list[str], body: dict[str, object], code: str, field: str
) -> None:
    response = httpx.put(two_servers[0] + LIMITS, json=body, headers=admin())
    assert response.status_code == 400
    status = response.json()["responseStatus"]
    assert (status["errorCode"], status["errors"][0]["fieldName"]) == (code, field)


def test_jsv_and_pascal_case_as_on_the_usage_endpoint(two_servers: list[str]) -> None:
    response = httpx.post(
        two_servers[0] + LIMITS + "?jsconfig=TextCase:PascalCase",
        content=f"{{CompanyId:{COMPANY},TokenLimit:42}}",
        headers={**admin(), "Content-Type": "text/jsv", "Accept": "text/jsv"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/jsv")
    assert response.text == (
        f"{{CompanyId:{COMPANY.hex},TokenLimit:42,OverrideTokenLimit:42,LimitSource:override}}"
    )


def test_the_openapi_document_lists_the_admin_routes(two_servers: list[str]) -> None:
    document = httpx.get(two_servers[0] + "/openapi.json").json()
    operations = document["paths"][LIMITS]
    assert set(operations) >= {"get", "put", "post", "delete"}
    assert "AiChatLimitResponse" in document["components"]["schemas"]
