"""Recording and reading usage over real HTTP, in JSON and JSV, with both stores."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from endpoint_support import (
    ADMIN_KEY,
    COMPANY_A,
    COMPANY_B,
    JSON_TYPE,
    JSV_TYPE,
    PATH,
    SUCCESS_NAMES,
    TOKEN_LIMIT,
    USER_B_KEY,
    WINDOW_DAYS,
    Serve,
    bearer,
    decode,
    pascal,
    usage,
)

from budget_guard.endpoint import EndpointSettings
from budget_guard.wire import TextCase

SEEDS = Path("/work/shared/seeds")


def test_post_json_records_and_returns_the_updated_usage(serve_endpoint: Serve) -> None:
    url = serve_endpoint()
    first = httpx.post(url + PATH, json={"TokensUsed": 1200}, headers=bearer())
    assert first.headers["content-type"] == JSON_TYPE
    assert usage(first) == {
        "companyId": COMPANY_A.hex,
        "tokensUsed": 1200,
        "tokenLimit": TOKEN_LIMIT,
        "tokensRemaining": TOKEN_LIMIT - 1200,
        "isWithinBudget": True,
        "windowDays": WINDOW_DAYS,
    }
    second = httpx.post(url + PATH, json={"tokensUsed": 800}, headers=bearer())
    assert usage(second)["tokensUsed"] == 2000


def test_post_jsv_request_and_response(serve_endpoint: Serve) -> None:
    url = serve_endpoint()
    response = httpx.post(
        url + PATH,
        content=b"{TokensUsed:1200}",
        headers=bearer(**{"Content-Type": "text/jsv", "Accept": "text/jsv"}),
    )
    assert response.headers["content-type"] == JSV_TYPE
    assert response.text == (
        "{companyId:3fa85f6457174562b3fc2c963f66afa6,tokensUsed:1200,tokenLimit:50000,"
        "tokensRemaining:48800,isWithinBudget:True,windowDays:30}"
    )


def _seed_request_body() -> bytes:
    """The pretty-printed JSV sample request of the seeds, exactly as published."""
    text = (SEEDS / "RecordAiChatUsage.fsharp-dtos.txt").read_text(encoding="utf-8")
    start = text.index("Content-Length: length\n\n") + len("Content-Length: length\n\n")
    return text[start : text.index("}", start) + 1].encode("utf-8")


def test_the_seeds_pretty_printed_jsv_sample_request_is_accepted(serve_endpoint: Serve) -> None:
    body = _seed_request_body()
    assert b"\n\tCompanyId: 00000000-0000-0000-0000-000000000000,\n\tTokensUsed: 0\n" in body
    url = serve_endpoint()
    # The sample names Guid.Empty, another company than any user's: an admin may act for it.
    response = httpx.post(
        url + PATH,
        content=body,
        headers=bearer(ADMIN_KEY, **{"Content-Type": "text/jsv", "Accept": "text/jsv"}),
    )
    assert response.headers["content-type"] == JSV_TYPE
    assert decode(response) == {
        "companyId": "00000000000000000000000000000000",
        "tokensUsed": "0",
        "tokenLimit": str(TOKEN_LIMIT),
        "tokensRemaining": str(TOKEN_LIMIT),
        "isWithinBudget": "True",
        "windowDays": str(WINDOW_DAYS),
    }
    # The same shape naming the caller's own company works for a user.
    own = body.replace(b"00000000-0000-0000-0000-000000000000", str(COMPANY_A).encode())
    own = own.replace(b"TokensUsed: 0", b"TokensUsed: 7")
    response = httpx.post(url + PATH, content=own, headers=bearer(**{"Content-Type": "text/jsv"}))
    assert decode(response)["tokensUsed"] == "7"


@pytest.mark.parametrize(
    ("path", "query", "headers", "expected"),
    [
        (PATH, "", {}, JSON_TYPE),
        (PATH, "", {"Accept": "text/jsv"}, JSV_TYPE),
        (PATH, "", {"Accept": "application/jsv"}, JSV_TYPE),
        (PATH, "?format=jsv", {}, JSV_TYPE),
        (PATH, "?format=json", {"Accept": "text/jsv"}, JSON_TYPE),
        (PATH + ".jsv", "", {}, JSV_TYPE),
        (PATH + ".json", "", {"Accept": "text/jsv"}, JSON_TYPE),
        (PATH + ".jsv", "?format=json", {}, JSON_TYPE),
        (PATH, "", {"Accept": "*/*"}, JSON_TYPE),
        ("/api/RecordAiChatUsage", "", {"Accept": "text/jsv"}, JSV_TYPE),
        ("/json/reply/RecordAiChatUsage", "", {"Accept": "text/jsv"}, JSON_TYPE),
        ("/jsv/reply/RecordAiChatUsage", "", {}, JSV_TYPE),
    ],
)
def test_format_negotiation(
    serve_endpoint: Serve, path: str, query: str, headers: dict[str, str], expected: str
) -> None:
    url = serve_endpoint()
    response = httpx.post(url + path + query, json={"tokensUsed": 5}, headers=bearer(**headers))
    assert response.headers["content-type"] == expected
    assert usage(response)["tokensUsed"] in (5, "5")


def test_jsv_request_body_answers_in_jsv_unless_accept_says_otherwise(
    serve_endpoint: Serve,
) -> None:
    url = serve_endpoint()
    jsv_body = bearer(**{"Content-Type": "text/jsv"})
    assert (
        httpx.post(url + PATH, content="{tokensused:1}", headers=jsv_body).headers["content-type"]
        == JSV_TYPE
    )
    answer = httpx.post(
        url + PATH, content="{tokensused:1}", headers={**jsv_body, "Accept": "application/json"}
    )
    assert answer.headers["content-type"] == JSON_TYPE


def test_query_string_wins_over_the_body(serve_endpoint: Serve) -> None:
    url = serve_endpoint()
    response = httpx.post(
        url + PATH,
        json={"TokensUsed": 999, "CompanyId": str(COMPANY_B)},
        params={"TokensUsed": "30", "companyId": str(COMPANY_A)},
        headers=bearer(),
    )
    assert usage(response)["tokensUsed"] == 30
    assert usage(response)["companyId"] == COMPANY_A.hex


def test_empty_body_with_everything_in_the_query(serve_endpoint: Serve) -> None:
    url = serve_endpoint()
    response = httpx.post(url + PATH + "?tokensUsed=12", headers=bearer())
    assert usage(response)["tokensUsed"] == 12


@pytest.mark.parametrize(
    "member",
    ["TokensUsed", "tokensUsed", "tokensused", "TOKENSUSED", "tokens_used"],
)
def test_member_names_match_case_insensitively(serve_endpoint: Serve, member: str) -> None:
    url = serve_endpoint()
    response = httpx.post(url + PATH, json={member: 3}, headers=bearer())
    assert usage(response)["tokensUsed"] == 3


@pytest.mark.parametrize(
    "company",
    [
        str(COMPANY_A),
        COMPANY_A.hex,
        COMPANY_A.hex.upper(),
        "{" + str(COMPANY_A) + "}",
    ],
)
def test_company_id_in_every_guid_form(serve_endpoint: Serve, company: str) -> None:
    url = serve_endpoint()
    response = httpx.post(
        url + PATH, json={"companyId": company, "tokensUsed": 1}, headers=bearer()
    )
    assert usage(response)["companyId"] == COMPANY_A.hex


def test_form_urlencoded_body(serve_endpoint: Serve) -> None:
    url = serve_endpoint()
    response = httpx.post(url + PATH, data={"TokensUsed": "44"}, headers=bearer())
    assert usage(response)["tokensUsed"] == 44


def test_zero_tokens_records_nothing_and_returns_current_usage(serve_endpoint: Serve) -> None:
    url = serve_endpoint()
    httpx.post(url + PATH, json={"tokensUsed": 10}, headers=bearer())
    assert (
        usage(httpx.post(url + PATH, json={"tokensUsed": 0}, headers=bearer()))["tokensUsed"] == 10
    )


def test_over_budget_usage_is_recorded_and_reported(serve_endpoint: Serve) -> None:
    url = serve_endpoint(token_limit=100)
    body = usage(httpx.post(url + PATH, json={"tokensUsed": 150}, headers=bearer()))
    assert body["tokensUsed"] == 150
    assert body["tokensRemaining"] == 0
    assert body["isWithinBudget"] is False
    body = usage(httpx.post(url + PATH, json={"tokensUsed": 1}, headers=bearer()))
    assert body["tokensUsed"] == 151


def test_admin_records_for_the_company_it_names(serve_endpoint: Serve) -> None:
    url = serve_endpoint()
    response = httpx.post(
        url + PATH, json={"companyId": str(COMPANY_B), "tokensUsed": 9}, headers=bearer(ADMIN_KEY)
    )
    assert usage(response)["companyId"] == COMPANY_B.hex
    mine = httpx.get(url + PATH, headers=bearer(USER_B_KEY))
    assert usage(mine)["tokensUsed"] == 9


def test_companies_are_counted_separately(serve_endpoint: Serve) -> None:
    url = serve_endpoint()
    httpx.post(url + PATH, json={"tokensUsed": 5}, headers=bearer())
    other = httpx.post(url + PATH, json={"tokensUsed": 7}, headers=bearer(USER_B_KEY))
    assert usage(other)["tokensUsed"] == 7


class TestGet:
    def test_get_returns_the_same_dto_without_recording(self, serve_endpoint: Serve) -> None:
        url = serve_endpoint()
        recorded = usage(httpx.post(url + PATH, json={"tokensUsed": 1200}, headers=bearer()))
        for _ in range(2):
            assert usage(httpx.get(url + PATH, headers=bearer())) == recorded

    def test_get_of_a_company_with_no_usage(self, serve_endpoint: Serve) -> None:
        url = serve_endpoint()
        assert usage(httpx.get(url + PATH, headers=bearer())) == {
            "companyId": COMPANY_A.hex,
            "tokensUsed": 0,
            "tokenLimit": TOKEN_LIMIT,
            "tokensRemaining": TOKEN_LIMIT,
            "isWithinBudget": True,
            "windowDays": WINDOW_DAYS,
        }

    def test_get_ignores_tokens_in_the_query(self, serve_endpoint: Serve) -> None:
        url = serve_endpoint()
        response = httpx.get(url + PATH, params={"TokensUsed": "500"}, headers=bearer())
        assert usage(response)["tokensUsed"] == 0
        assert usage(httpx.get(url + PATH, headers=bearer()))["tokensUsed"] == 0

    def test_get_takes_company_id_from_the_query_only(self, serve_endpoint: Serve) -> None:
        url = serve_endpoint()
        httpx.post(
            url + PATH,
            json={"companyId": str(COMPANY_B), "tokensUsed": 3},
            headers=bearer(ADMIN_KEY),
        )
        response = httpx.get(
            url + PATH, params={"CompanyId": str(COMPANY_B)}, headers=bearer(ADMIN_KEY)
        )
        assert usage(response)["tokensUsed"] == 3
        # A body on a GET is never read: it cannot name the company.
        response = httpx.request(
            "GET",
            url + PATH,
            json={"CompanyId": str(COMPANY_B)},
            headers=bearer(),
        )
        assert usage(response)["companyId"] == COMPANY_A.hex

    def test_get_in_jsv(self, serve_endpoint: Serve) -> None:
        url = serve_endpoint()
        response = httpx.get(url + PATH + ".jsv", headers=bearer())
        assert response.headers["content-type"] == JSV_TYPE
        assert decode(response)["tokensUsed"] == "0"

    def test_head_sends_the_headers_of_get(self, serve_endpoint: Serve) -> None:
        url = serve_endpoint()
        got = httpx.get(url + PATH, headers=bearer())
        head = httpx.head(url + PATH, headers=bearer())
        assert head.status_code == 200
        assert head.content == b""
        assert head.headers["content-type"] == JSON_TYPE
        assert head.headers["content-length"] == got.headers["content-length"]


class TestCasing:
    def test_camel_case_by_default(self, serve_endpoint: Serve) -> None:
        url = serve_endpoint()
        assert list(decode(httpx.get(url + PATH, headers=bearer()))) == SUCCESS_NAMES

    def test_pascal_case_by_setting(self, serve_endpoint: Serve) -> None:
        url = serve_endpoint(settings=EndpointSettings(text_case=TextCase.PASCAL))
        for path in (PATH, PATH + ".jsv"):
            names = list(decode(httpx.get(url + path, headers=bearer())))
            assert names == [pascal(name) for name in SUCCESS_NAMES]
        error = decode(httpx.get(url + PATH))
        assert list(error) == ["ResponseStatus"]
        assert error["ResponseStatus"]["ErrorCode"] == "Unauthorized"

    @pytest.mark.parametrize("jsconfig", ["TextCase:PascalCase", "textcase:pascalcase", "tc:pc"])
    def test_pascal_case_per_request(self, serve_endpoint: Serve, jsconfig: str) -> None:
        url = serve_endpoint()
        response = httpx.post(
            url + PATH, params={"jsconfig": jsconfig}, json={"tokensUsed": 1}, headers=bearer()
        )
        assert list(decode(response)) == [pascal(name) for name in SUCCESS_NAMES]

    def test_camel_case_per_request_over_a_pascal_setting(self, serve_endpoint: Serve) -> None:
        url = serve_endpoint(settings=EndpointSettings(text_case=TextCase.PASCAL))
        response = httpx.get(url + PATH + "?jsconfig=TextCase:CamelCase", headers=bearer())
        assert list(decode(response)) == SUCCESS_NAMES


class TestMounting:
    def test_routes_mounted_under_a_prefix(self, serve_endpoint: Serve) -> None:
        url = serve_endpoint(mount="/budget")
        response = httpx.post(
            url + "/budget" + PATH + ".jsv", json={"tokensUsed": 2}, headers=bearer()
        )
        assert response.headers["content-type"] == JSV_TYPE
        assert decode(response)["tokensUsed"] == "2"
        assert httpx.post(url + PATH, json={"tokensUsed": 2}, headers=bearer()).status_code == 404

    def test_the_bare_asgi_app_serves_every_path_it_matches(self, serve_endpoint: Serve) -> None:
        url = serve_endpoint(bare=True)
        for path in (PATH, PATH + ".json", "/api/RecordAiChatUsage"):
            assert usage(httpx.post(url + path, json={"tokensUsed": 1}, headers=bearer()))
        assert httpx.get(url + PATH + "/openapi.json").status_code == 200

    def test_a_custom_path(self, serve_endpoint: Serve) -> None:
        url = serve_endpoint(settings=EndpointSettings(path="/usage"))
        assert usage(httpx.post(url + "/usage.json", json={"tokensUsed": 1}, headers=bearer()))
        assert httpx.post(url + PATH, json={"tokensUsed": 1}, headers=bearer()).status_code == 404
