"""Binding RecordAiChatUsage from query and body, and the contract's 400/415 error rows."""

# The request DTO below is written the way ServiceStack's Python generator emits it.
# ruff: noqa: UP045

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional
from uuid import UUID

import pytest
from dataclasses_json import LetterCase, Undefined, dataclass_json
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from servicestack import to_json

from budget_guard.wire import (
    BindingError,
    FieldError,
    RecordRequest,
    ResponseStatus,
    bind_record_request,
)

COMPANY = UUID("3fa85f64-5717-4562-b3fc-2c963f66afa6")
JSON = "application/json"
JSV = "text/jsv"
FORM = "application/x-www-form-urlencoded"
#: A verbatim copy of the seeds' pretty-printed (tab-indented) JSV sample request.
SEED_REQUEST = Path(__file__).parent / "data" / "seed_request_pretty.jsv"


def bind(
    query: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    content_type: str | None = None,
    require_tokens: bool = True,
) -> RecordRequest:
    return bind_record_request(
        query=query or [],
        body=body,
        content_type=content_type,
        require_tokens=require_tokens,
    )


def refused(
    query: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    content_type: str | None = None,
    require_tokens: bool = True,
) -> BindingError:
    with pytest.raises(BindingError) as raised:
        bind(query, body, content_type, require_tokens)
    return raised.value


def assert_field_error(error: BindingError, code: str, field: str) -> None:
    assert error.status_code == 400
    status = error.response_status
    assert status.errors, "a field error must be listed"
    first = status.errors[0]
    assert (first.error_code, first.field_name) == (code, field)
    assert (status.error_code, status.message) == (first.error_code, first.message)


# --------------------------------------------------------------------------- success


def test_json_body() -> None:
    body = b'{"CompanyId":"3fa85f64-5717-4562-b3fc-2c963f66afa6","TokensUsed":1200}'
    assert bind(body=body, content_type=JSON) == RecordRequest(COMPANY, 1200)


def test_json_body_with_charset_and_odd_casing_of_the_media_type() -> None:
    body = b'{"tokensUsed":5}'
    assert bind(body=body, content_type="Application/JSON; charset=UTF-8").tokens_used == 5


def test_body_without_content_type_is_read_as_json() -> None:
    assert bind(body=b'{"TokensUsed":7}', content_type=None).tokens_used == 7


def test_jsv_body() -> None:
    body = b"{CompanyId:3fa85f6457174562b3fc2c963f66afa6,TokensUsed:1200}"
    assert bind(body=body, content_type=JSV) == RecordRequest(COMPANY, 1200)
    assert bind(body=body, content_type="application/jsv").tokens_used == 1200


def test_seed_sample_request_binds() -> None:
    sample = SEED_REQUEST.read_text()
    assert "\t" in sample
    request = bind(body=sample.encode(), content_type="text/jsv")
    assert request == RecordRequest(UUID(int=0), 0)


def test_form_body() -> None:
    body = b"CompanyId=3fa85f64-5717-4562-b3fc-2c963f66afa6&TokensUsed=42"
    assert bind(body=body, content_type=FORM) == RecordRequest(COMPANY, 42)


def test_everything_in_the_query_and_an_empty_body() -> None:
    query = [("CompanyId", str(COMPANY)), ("TokensUsed", "9")]
    assert bind(query, b"", JSON) == RecordRequest(COMPANY, 9)
    assert bind(query, b"  \r\n", "text/plain") == RecordRequest(COMPANY, 9)


def test_company_id_is_optional() -> None:
    assert bind(body=b'{"TokensUsed":3}', content_type=JSON) == RecordRequest(None, 3)
    assert bind(body=b'{"TokensUsed":3,"CompanyId":null}', content_type=JSON).company_id is None
    assert bind(body=b'{"TokensUsed":3,"CompanyId":""}', content_type=JSON).company_id is None


def test_zero_tokens_is_valid() -> None:
    assert bind([("TokensUsed", "0")]).tokens_used == 0


def test_int64_bounds_are_accepted() -> None:
    assert bind(body=b'{"TokensUsed":9223372036854775807}').tokens_used == 2**63 - 1
    assert bind([("TokensUsed", "9223372036854775807")]).tokens_used == 2**63 - 1
    assert bind([("TokensUsed", "+15")]).tokens_used == 15
    assert bind([("TokensUsed", " 0015 ")]).tokens_used == 15


def test_numeric_strings_in_json_are_accepted_like_servicestack() -> None:
    assert bind(body=b'{"TokensUsed":"1200"}', content_type=JSON).tokens_used == 1200


@pytest.mark.parametrize(
    "name", ["TokensUsed", "tokensUsed", "tokensused", "TOKENSUSED", "tokens_used"]
)
def test_token_names_match_case_insensitively(name: str) -> None:
    assert bind([(name, "5")]).tokens_used == 5
    assert bind(body=f'{{"{name}":6}}'.encode(), content_type=JSON).tokens_used == 6
    assert bind(body=f"{{{name}:7}}".encode(), content_type=JSV).tokens_used == 7


@pytest.mark.parametrize("name", ["CompanyId", "companyId", "companyid", "company_id"])
def test_company_names_match_case_insensitively(name: str) -> None:
    assert bind([(name, str(COMPANY)), ("TokensUsed", "1")]).company_id == COMPANY


@pytest.mark.parametrize(
    "form",
    [
        "3fa85f64-5717-4562-b3fc-2c963f66afa6",
        "3FA85F64-5717-4562-B3FC-2C963F66AFA6",
        "3fa85f6457174562b3fc2c963f66afa6",
        "{3fa85f64-5717-4562-b3fc-2c963f66afa6}",
        "{3fa85f6457174562b3fc2c963f66afa6}",
        "(3fa85f64-5717-4562-b3fc-2c963f66afa6)",
        " 3fa85f64-5717-4562-b3fc-2c963f66afa6 ",
    ],
)
def test_guid_forms(form: str) -> None:
    assert bind([("CompanyId", form), ("TokensUsed", "1")]).company_id == COMPANY


def test_query_wins_over_body_field_by_field() -> None:
    other = UUID(int=1)
    body = f'{{"CompanyId":"{other}","TokensUsed":100}}'.encode()
    request = bind([("TokensUsed", "5")], body, JSON)
    assert request == RecordRequest(other, 5)
    request = bind([("CompanyId", str(COMPANY))], body, JSON)
    assert request == RecordRequest(COMPANY, 100)


def test_blank_query_value_does_not_erase_the_body_value() -> None:
    assert bind([("TokensUsed", "")], b'{"TokensUsed":8}', JSON).tokens_used == 8


def test_unknown_members_are_ignored() -> None:
    body = b'{"TokensUsed":1,"Extra":{"deep":[1,2]},"format":"jsv"}'
    assert (
        bind([("format", "jsv"), ("jsconfig", "TextCase:PascalCase")], body, JSON).tokens_used == 1
    )


def test_a_utf8_bom_is_tolerated() -> None:
    assert bind(body=b'\xef\xbb\xbf{"TokensUsed":2}', content_type=JSON).tokens_used == 2
    assert bind(body=b"\xef\xbb\xbf{TokensUsed:2}", content_type=JSV).tokens_used == 2


def test_read_only_binding_needs_no_tokens_and_ignores_them() -> None:
    assert bind(require_tokens=False) == RecordRequest(None, 0)
    query = [("CompanyId", str(COMPANY)), ("TokensUsed", "junk")]
    assert bind(query, require_tokens=False) == RecordRequest(COMPANY, 0)


def test_read_only_binding_still_checks_the_company_id() -> None:
    error = refused([("CompanyId", "nope")], require_tokens=False)
    assert_field_error(error, "SerializationException", "CompanyId")


@dataclass_json(letter_case=LetterCase.CAMEL, undefined=Undefined.EXCLUDE)
@dataclass
class RecordAiChatUsage:
    company_id: Optional[str] = None
    tokens_used: int = 0


def test_body_written_by_the_servicestack_python_client_binds() -> None:
    body = to_json(RecordAiChatUsage(company_id=str(COMPANY), tokens_used=321))
    assert bind(body=body.encode(), content_type=JSON) == RecordRequest(COMPANY, 321)


# --------------------------------------------------------------------------- error rows


def test_missing_tokens_is_not_empty() -> None:
    error = refused(body=b'{"CompanyId":"3fa85f6457174562b3fc2c963f66afa6"}', content_type=JSON)
    assert error.response_status == ResponseStatus(
        error_code="NotEmpty",
        message="'Tokens Used' must not be empty.",
        errors=[FieldError("NotEmpty", "TokensUsed", "'Tokens Used' must not be empty.")],
    )


@pytest.mark.parametrize(
    ("query", "body", "content_type"),
    [
        ([], b"", None),
        ([], b"{}", JSON),
        ([], b'{"TokensUsed":null}', JSON),
        ([("TokensUsed", "")], b"", None),
        ([], b"{TokensUsed:}", JSV),
        ([], b"TokensUsed=", FORM),
    ],
)
def test_absent_or_null_tokens_are_not_empty(
    query: list[tuple[str, str]], body: bytes, content_type: str | None
) -> None:
    assert_field_error(refused(query, body, content_type), "NotEmpty", "TokensUsed")


@pytest.mark.parametrize("value", ["-1", "-9223372036854775808"])
def test_negative_tokens_are_greater_than_or_equal(value: str) -> None:
    error = refused([("TokensUsed", value)])
    assert_field_error(error, "GreaterThanOrEqual", "TokensUsed")
    assert error.response_status.message == "'Tokens Used' must be greater than or equal to '0'."


def test_negative_tokens_in_json() -> None:
    assert_field_error(refused(body=b'{"TokensUsed":-5}'), "GreaterThanOrEqual", "TokensUsed")


@pytest.mark.parametrize(
    "value",
    [
        "abc",
        "1.5",
        "1e3",
        "1,000",
        "1_000",
        "0x10",
        "true",
        "٣",  # a non-ASCII digit int() would accept
        "9223372036854775808",
        "-9223372036854775809",
        "99999999999999999999999999999999",
        "9" * 5000,
    ],
)
def test_tokens_that_are_not_an_int64_in_the_query(value: str) -> None:
    error = refused([("TokensUsed", value)])
    assert_field_error(error, "SerializationException", "TokensUsed")
    assert "is an Invalid value for 'TokensUsed'" in error.response_status.message
    assert len(error.response_status.message) < 200


@pytest.mark.parametrize(
    "literal",
    [
        b"1.5",
        b"1.0",
        b"1e3",
        b"true",
        b"false",
        b'{"a":1}',
        b"[1]",
        b'"x"',
        b"9223372036854775808",
        b"18446744073709551615",
        b"99999999999999999999",
        b"-9223372036854775809",
    ],
)
def test_tokens_that_are_not_an_int64_in_json(literal: bytes) -> None:
    error = refused(body=b'{"TokensUsed":' + literal + b"}", content_type=JSON)
    assert_field_error(error, "SerializationException", "TokensUsed")


@pytest.mark.parametrize("value", [b"1.5", b"{A:1}", b"[1,2]", b"True", b'"1 2"'])
def test_tokens_that_are_not_an_int64_in_jsv(value: bytes) -> None:
    error = refused(body=b"{TokensUsed:" + value + b"}", content_type=JSV)
    assert_field_error(error, "SerializationException", "TokensUsed")


@pytest.mark.parametrize(
    "value",
    [
        "not-a-guid",
        "3fa85f64-5717-4562-b3fc-2c963f66afa",
        "3fa85f64-5717-4562-b3fc-2c963f66afa6x",
        "3fa85f64571-74562b3fc2c963f66afa6",
        "urn:uuid:3fa85f64-5717-4562-b3fc-2c963f66afa6",
        "{3fa85f64-5717-4562-b3fc-2c963f66afa6",
        "g" * 32,
    ],
)
def test_company_id_that_is_not_a_guid(value: str) -> None:
    error = refused([("CompanyId", value), ("TokensUsed", "1")])
    assert_field_error(error, "SerializationException", "CompanyId")


@pytest.mark.parametrize("literal", [b"123", b"true", b"{}", b"[]"])
def test_company_id_of_the_wrong_json_type(literal: bytes) -> None:
    error = refused(body=b'{"TokensUsed":1,"CompanyId":' + literal + b"}", content_type=JSON)
    assert_field_error(error, "SerializationException", "CompanyId")


def test_every_conversion_error_is_listed_and_the_first_is_repeated() -> None:
    error = refused([("CompanyId", "x"), ("TokensUsed", "y")])
    status = error.response_status
    assert [(e.error_code, e.field_name) for e in status.errors] == [
        ("SerializationException", "CompanyId"),
        ("SerializationException", "TokensUsed"),
    ]
    assert status.message == "'x' is an Invalid value for 'CompanyId'"


def test_conversion_errors_come_before_validation() -> None:
    error = refused([("CompanyId", "x")])
    assert [e.error_code for e in error.response_status.errors] == ["SerializationException"]


@pytest.mark.parametrize(
    ("query", "body", "content_type", "field"),
    [
        ([("TokensUsed", "1"), ("TokensUsed", "2")], b"", None, "TokensUsed"),
        ([("TokensUsed", "5"), ("tokens_used", "5")], b"", None, "TokensUsed"),
        (
            [("CompanyId", str(COMPANY)), ("companyid", str(COMPANY)), ("TokensUsed", "1")],
            b"",
            None,
            "CompanyId",
        ),
        ([], b'{"TokensUsed":1,"tokensused":2}', JSON, "TokensUsed"),
        ([], b"{TokensUsed:1,tokensUsed:1}", JSV, "TokensUsed"),
        ([], b"TokensUsed=1&TokensUsed=2", FORM, "TokensUsed"),
    ],
)
def test_a_field_given_twice_in_one_source_is_refused(
    query: list[tuple[str, str]], body: bytes, content_type: str | None, field: str
) -> None:
    error = refused(query, body, content_type)
    assert_field_error(error, "SerializationException", field)
    if len(query) == 2 and field == "TokensUsed" and query[1][1] == "2":
        assert error.response_status.message == "'1,2' is an Invalid value for 'TokensUsed'"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"{", JSON),
        (b'{"TokensUsed":1', JSON),
        (b"[1,2]", JSON),
        (b"5", JSON),
        (b"null", JSON),
        (b'"text"', JSON),
        (b'{"TokensUsed":"\xff"}', JSON),
        (b"\xff\xfe", JSON),
        (b"{TokensUsed:1", JSV),
        (b"[a,b]", JSV),
        (b"just text", JSV),
        (b"{TokensUsed:\xff}", JSV),
        (b"TokensUsed=%FF", FORM),
        (b"\xff=1", FORM),
        (b"[" * 5000 + b"]" * 5000, JSON),
        (b"[" * 5000 + b"]" * 5000, JSV),
    ],
)
def test_body_that_does_not_parse(body: bytes, content_type: str) -> None:
    error = refused([("TokensUsed", "1")], body, content_type)
    assert error.status_code == 400
    assert error.response_status.error_code == "SerializationException"
    assert error.response_status.errors == []
    assert "Could not deserialize" in error.response_status.message


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/xml",
        "multipart/form-data; boundary=x",
        "application/x-msgpack",
        "garbage",
    ],
)
def test_unsupported_content_type_is_415(content_type: str) -> None:
    error = refused(body=b'{"TokensUsed":1}', content_type=content_type)
    assert error.status_code == 415
    assert error.response_status.error_code == "UnsupportedMediaType"
    assert error.response_status.errors == []


def test_too_many_form_fields_is_a_400() -> None:
    body = "&".join(f"f{i}=1" for i in range(2000)).encode()
    error = refused(body=body, content_type=FORM)
    assert error.status_code == 400


# --------------------------------------------------------------------------- fuzz

_names = st.sampled_from(
    ["TokensUsed", "tokens_used", "CompanyId", "companyid", "other"]
) | st.text(max_size=12)
_values = (
    st.text(max_size=40)
    | st.integers().map(str)
    | st.uuids().map(str)
    | st.sampled_from(["", "1e3", "1.5", "-1", "9" * 30, "{3fa85f64-5717-4562-b3fc-2c963f66afa6}"])
)
_content_types = (
    st.none()
    | st.sampled_from(
        [
            JSON,
            JSV,
            FORM,
            "application/jsv",
            "text/json",
            "text/plain",
            "",
            ";",
            "application/json; charset=latin-1",
        ]
    )
    | st.text(max_size=30)
)
_json_bodies = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_names, inner, max_size=4),
    max_leaves=12,
).map(lambda value: json.dumps(value).encode())  # stdlib: big ints too
_jsv_bodies = st.lists(
    st.sampled_from(
        ["{", "}", "[", "]", ",", ":", '"', " ", "\n", "TokensUsed", "CompanyId", "12", "-3", "x"]
    ),
    max_size=25,
).map(lambda parts: "".join(parts).encode())
_bodies = (
    st.binary(max_size=200) | _json_bodies | _jsv_bodies | st.text(max_size=80).map(str.encode)
)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(
    query=st.lists(st.tuples(_names, _values), max_size=5),
    body=_bodies,
    content_type=_content_types,
    require_tokens=st.booleans(),
)
def test_only_binding_errors_with_a_4xx_ever_escape(
    query: list[tuple[str, str]], body: bytes, content_type: str | None, require_tokens: bool
) -> None:
    try:
        request = bind(query, body, content_type, require_tokens)
    except BindingError as error:
        assert error.status_code in (400, 415)
        status = error.response_status
        assert status.error_code and status.message
        if status.errors:
            assert (status.error_code, status.message) == (
                status.errors[0].error_code,
                status.errors[0].message,
            )
            assert all(e.field_name in ("TokensUsed", "CompanyId") for e in status.errors)
    else:
        assert isinstance(request.tokens_used, int)
        assert 0 <= request.tokens_used <= 2**63 - 1
        assert request.company_id is None or isinstance(request.company_id, UUID)
        if not require_tokens:
            assert request.tokens_used == 0
