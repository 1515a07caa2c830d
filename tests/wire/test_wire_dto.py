"""Response bodies as ServiceStack writes them, and as ServiceStack's Python client reads them."""

from uuid import UUID

import orjson
import pytest
from servicestack import EmptyResponse, from_json
from tests.servicestack_dtos import AiChatUsageResponse

from budget_guard.wire import (
    FieldError,
    ResponseStatus,
    TextCase,
    WireFormat,
    error_body,
    error_status,
    loads,
    usage_body,
)

COMPANY = UUID("3fa85f64-5717-4562-b3fc-2c963f66afa6")


def _usage(fmt: WireFormat, case: TextCase) -> bytes:
    return usage_body(
        company_id=COMPANY,
        tokens_used=1200,
        token_limit=50000,
        tokens_remaining=48800,
        is_within_budget=True,
        window_days=30,
        fmt=fmt,
        case=case,
    )


def _validation_status() -> ResponseStatus:
    first = FieldError("NotEmpty", "TokensUsed", "'Tokens Used' must not be empty.")
    return ResponseStatus(
        error_code=first.error_code,
        message=first.message,
        errors=[first, FieldError("SerializationException", "CompanyId", "bad", {"Hint": "x"})],
    )


# --------------------------------------------------------------------------- exact bytes


def test_json_success_body_is_camel_case_in_declaration_order() -> None:
    assert _usage(WireFormat.JSON, TextCase.CAMEL) == (
        b'{"companyId":"3fa85f6457174562b3fc2c963f66afa6","tokensUsed":1200,"tokenLimit":50000,'
        b'"tokensRemaining":48800,"isWithinBudget":true,"windowDays":30}'
    )


def test_json_success_body_in_pascal_case() -> None:
    assert _usage(WireFormat.JSON, TextCase.PASCAL) == (
        b'{"CompanyId":"3fa85f6457174562b3fc2c963f66afa6","TokensUsed":1200,"TokenLimit":50000,'
        b'"TokensRemaining":48800,"IsWithinBudget":true,"WindowDays":30}'
    )


def test_jsv_success_body() -> None:
    assert _usage(WireFormat.JSV, TextCase.CAMEL) == (
        b"{companyId:3fa85f6457174562b3fc2c963f66afa6,tokensUsed:1200,tokenLimit:50000,"
        b"tokensRemaining:48800,isWithinBudget:True,windowDays:30}"
    )
    assert _usage(WireFormat.JSV, TextCase.PASCAL).startswith(b"{CompanyId:3fa85f64")


def test_over_budget_body_says_false() -> None:
    body = usage_body(
        company_id=COMPANY,
        tokens_used=60000,
        token_limit=50000,
        tokens_remaining=0,
        is_within_budget=False,
        window_days=30,
        fmt=WireFormat.JSV,
        case=TextCase.CAMEL,
    )
    assert b"isWithinBudget:False" in body
    assert b"tokensRemaining:0," in body


def test_json_error_body_has_only_response_status_and_no_stack_trace() -> None:
    body = error_body(_validation_status(), WireFormat.JSON, TextCase.CAMEL)
    assert orjson.loads(body) == {
        "responseStatus": {
            "errorCode": "NotEmpty",
            "message": "'Tokens Used' must not be empty.",
            "errors": [
                {
                    "errorCode": "NotEmpty",
                    "fieldName": "TokensUsed",
                    "message": "'Tokens Used' must not be empty.",
                },
                {
                    "errorCode": "SerializationException",
                    "fieldName": "CompanyId",
                    "message": "bad",
                    "meta": {"Hint": "x"},
                },
            ],
        }
    }
    assert b"stackTrace" not in body
    assert body.startswith(b'{"responseStatus":{"errorCode":"NotEmpty","message":')


def test_pascal_error_body_keeps_meta_keys_as_given() -> None:
    status = ResponseStatus("Forbidden", "no", [], meta={"camelKey": "v"})
    body = error_body(status, WireFormat.JSON, TextCase.PASCAL)
    assert body == (
        b'{"ResponseStatus":{"ErrorCode":"Forbidden","Message":"no","Errors":[],'
        b'"Meta":{"camelKey":"v"}}}'
    )


def test_jsv_error_body_quotes_messages_with_special_characters() -> None:
    body = error_body(_validation_status(), WireFormat.JSV, TextCase.CAMEL)
    assert body.startswith(b"{responseStatus:{errorCode:NotEmpty,message:'Tokens Used' must not")
    parsed = loads(body.decode())
    assert isinstance(parsed, dict)
    errors = parsed["responseStatus"]["errors"]  # type: ignore[index]
    assert errors[1] == {
        "errorCode": "SerializationException",
        "fieldName": "CompanyId",
        "message": "bad",
        "meta": {"Hint": "x"},
    }


def test_jsv_error_message_with_colon_and_comma_round_trips() -> None:
    status = error_status(415, "UnsupportedMediaType", "Content-Type 'a,b:c' is not supported")
    parsed = loads(error_body(status, WireFormat.JSV, TextCase.PASCAL).decode())
    assert parsed == {
        "ResponseStatus": {
            "ErrorCode": "UnsupportedMediaType",
            "Message": "Content-Type 'a,b:c' is not supported",
            "Errors": [],
        }
    }


def test_error_text_that_is_not_utf8_is_replaced_not_fatal() -> None:
    status = error_status(400, "SerializationException", "'\ud800' is an Invalid value")
    body = error_body(status, WireFormat.JSON, TextCase.CAMEL)
    assert "\ufffd" in orjson.loads(body)["responseStatus"]["message"]
    jsv_body = error_body(status, WireFormat.JSV, TextCase.CAMEL)
    assert jsv_body.decode("utf-8").startswith("{responseStatus:{errorCode:SerializationException")


# --------------------------------------------------------------------------- error_status


@pytest.mark.parametrize(
    ("status_code", "expected_code"),
    [
        (401, "Unauthorized"),
        (403, "Forbidden"),
        (405, "MethodNotAllowed"),
        (413, "RequestEntityTooLarge"),
        (415, "UnsupportedMediaType"),
        (422, "UnprocessableEntity"),
        (503, "ServiceUnavailable"),
    ],
)
def test_error_status_fills_the_contract_code_when_none_is_given(
    status_code: int, expected_code: str
) -> None:
    status = error_status(status_code, "", "message")
    assert status == ResponseStatus(error_code=expected_code, message="message", errors=[])


def test_error_status_keeps_an_explicit_code_and_refuses_success_statuses() -> None:
    assert error_status(401, "Unauthorized", "Not Authenticated").message == "Not Authenticated"
    with pytest.raises(ValueError):
        error_status(200, "Ok", "fine")


# --------------------------------------------------------------------------- ServiceStack client


def test_servicestack_client_reads_the_success_body() -> None:
    body = _usage(WireFormat.JSON, TextCase.CAMEL).decode()
    response = from_json(AiChatUsageResponse, body)
    assert response == AiChatUsageResponse(
        company_id="3fa85f6457174562b3fc2c963f66afa6",
        tokens_used=1200,
        token_limit=50000,
        tokens_remaining=48800,
        is_within_budget=True,
        window_days=30,
        response_status=None,
    )
    assert UUID(response.company_id) == COMPANY


def test_servicestack_client_reads_the_error_body_into_the_response_dto() -> None:
    body = error_body(_validation_status(), WireFormat.JSON, TextCase.CAMEL).decode()
    response = from_json(AiChatUsageResponse, body)
    status = response.response_status
    assert status is not None
    assert status.error_code == "NotEmpty"
    assert status.stack_trace is None
    assert [(e.error_code, e.field_name) for e in status.errors] == [
        ("NotEmpty", "TokensUsed"),
        ("SerializationException", "CompanyId"),
    ]
    assert status.errors[1].meta == {"Hint": "x"}


def test_servicestack_client_reads_error_bodies_the_way_its_error_handler_does() -> None:
    """On a 4xx JsonServiceClient parses the body as EmptyResponse to fill WebServiceException."""
    status = error_status(401, "Unauthorized", "Not Authenticated")
    body = error_body(status, WireFormat.JSON, TextCase.CAMEL).decode()
    parsed = from_json(EmptyResponse, body)
    assert parsed.response_status.error_code == "Unauthorized"
    assert parsed.response_status.message == "Not Authenticated"
    assert parsed.response_status.errors == []
