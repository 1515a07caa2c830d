"""The official ServiceStack Python client, unchanged, against the live endpoint.

The DTOs are what ServiceStack's "Add ServiceStack Reference" generates for Python
(``tests/servicestack_dtos.py``).
``post_url`` sends to the documented route; ``post(dto)`` / ``get(dto)`` send to ServiceStack's
predefined route ``/api/RecordAiChatUsage``, which the endpoint serves too.
"""

from __future__ import annotations

import pytest
from endpoint_support import ADMIN_KEY, COMPANY_A, COMPANY_B, PATH, USER_A_KEY, Serve
from servicestack import JsonServiceClient, WebServiceException
from tests.servicestack_dtos import AiChatUsageResponse, RecordAiChatUsage


def _client(url: str, key: str | None = USER_A_KEY) -> JsonServiceClient:
    client = JsonServiceClient(url)
    if key is not None:
        client.bearer_token = key
    return client


def test_post_url_records_and_parses_the_response(serve_endpoint: Serve) -> None:
    client = _client(serve_endpoint())
    response = client.post_url(PATH, RecordAiChatUsage(tokens_used=1200))
    assert isinstance(response, AiChatUsageResponse)
    assert response == AiChatUsageResponse(
        company_id=COMPANY_A.hex,
        tokens_used=1200,
        token_limit=50_000,
        tokens_remaining=48_800,
        is_within_budget=True,
        window_days=30,
    )
    again = client.post_url(PATH, RecordAiChatUsage(company_id=str(COMPANY_A), tokens_used=800))
    assert again.tokens_used == 2000


def test_post_with_the_dto_uses_the_predefined_route(serve_endpoint: Serve) -> None:
    client = _client(serve_endpoint())
    assert client.post(RecordAiChatUsage(tokens_used=5)).tokens_used == 5
    # get(dto) sends the DTO in the query (tokensUsed=0 included); a GET records nothing.
    assert client.get(RecordAiChatUsage(tokens_used=99)).tokens_used == 5


def test_zero_tokens_is_sent_and_accepted(serve_endpoint: Serve) -> None:
    client = _client(serve_endpoint())
    assert client.post_url(PATH, RecordAiChatUsage(tokens_used=0)).tokens_used == 0


def test_401_reaches_the_client_as_a_response_status(serve_endpoint: Serve) -> None:
    client = _client(serve_endpoint(), key=None)
    with pytest.raises(WebServiceException) as raised:
        client.post_url(PATH, RecordAiChatUsage(tokens_used=1))
    assert raised.value.status_code == 401
    assert raised.value.response_status.error_code == "Unauthorized"
    assert raised.value.response_status.message == "Not Authenticated"


def test_validation_errors_carry_the_field(serve_endpoint: Serve) -> None:
    client = _client(serve_endpoint())
    with pytest.raises(WebServiceException) as raised:
        client.post_url(PATH, RecordAiChatUsage(tokens_used=-1))
    status = raised.value.response_status
    assert raised.value.status_code == 400
    assert status.error_code == "GreaterThanOrEqual"
    assert status.errors[0].field_name == "TokensUsed"
    assert status.errors[0].error_code == "GreaterThanOrEqual"


def test_403_and_admin_rules(serve_endpoint: Serve) -> None:
    url = serve_endpoint()
    with pytest.raises(WebServiceException) as raised:
        _client(url).post_url(PATH, RecordAiChatUsage(company_id=str(COMPANY_B), tokens_used=1))
    assert raised.value.status_code == 403
    assert raised.value.response_status.error_code == "Forbidden"
    admin = _client(url, ADMIN_KEY)
    answer = admin.post_url(PATH, RecordAiChatUsage(company_id=str(COMPANY_B), tokens_used=3))
    assert answer.company_id == COMPANY_B.hex
    with pytest.raises(WebServiceException) as raised:
        admin.post_url(PATH, RecordAiChatUsage(tokens_used=3))
    assert raised.value.response_status.errors[0].field_name == "CompanyId"
