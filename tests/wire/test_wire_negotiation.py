"""Choosing the response format and member casing the way ServiceStack does."""

from __future__ import annotations

import pytest

from budget_guard.wire import TextCase, WireFormat, negotiate, text_case

JSON, JSV = WireFormat.JSON, WireFormat.JSV


def test_content_types_of_the_formats() -> None:
    assert JSON.content_type == "application/json; charset=utf-8"
    assert JSV.content_type == "text/jsv; charset=utf-8"


@pytest.mark.parametrize(
    ("query_format", "path_suffix", "accept", "content_type", "expected"),
    [
        # nothing asked: JSON
        (None, None, None, None, JSON),
        # each source alone
        ("jsv", None, None, None, JSV),
        ("JSV", None, None, None, JSV),
        (None, ".jsv", None, None, JSV),
        (None, "jsv", None, None, JSV),
        (None, None, "text/jsv", None, JSV),
        (None, None, "application/jsv", None, JSV),
        (None, None, None, "text/jsv", JSV),
        (None, None, None, "application/jsv; charset=utf-8", JSV),
        # ?format= beats everything
        ("json", ".jsv", "text/jsv", "text/jsv", JSON),
        ("jsv", ".json", "application/json", "application/json", JSV),
        # the suffix beats Accept and Content-Type
        (None, ".json", "text/jsv", "text/jsv", JSON),
        (None, ".jsv", "application/json", "application/json", JSV),
        # Accept beats the request's Content-Type
        (None, None, "application/json", "text/jsv", JSON),
        (None, None, "text/jsv", "application/json", JSV),
        # the request's Content-Type beats the default
        (None, None, None, "application/json", JSON),
        # sources naming nothing we speak do not decide
        ("xml", None, "text/jsv", None, JSV),
        ("", ".jsv", None, None, JSV),
        (None, ".csv", "text/jsv", None, JSV),
        (None, None, "*/*", "text/jsv", JSV),
        (None, None, "text/html,application/xhtml+xml,*/*;q=0.8", None, JSON),
        (None, None, None, "application/x-www-form-urlencoded", JSON),
        (None, None, None, "text/plain", JSON),
        # Accept: quality values, then order
        (None, None, "application/json;q=0.5, text/jsv", None, JSV),
        (None, None, "text/jsv;q=0.4, application/json;q=0.9", None, JSON),
        (None, None, "text/jsv, application/json", None, JSV),
        (None, None, "application/json, text/jsv", None, JSON),
        (None, None, "text/jsv;q=0", "text/jsv", JSV),
        (None, None, "text/jsv;q=0", None, JSON),
        (None, None, "TEXT/JSV ; Q=1", None, JSV),
    ],
)
def test_precedence(
    query_format: str | None,
    path_suffix: str | None,
    accept: str | None,
    content_type: str | None,
    expected: WireFormat,
) -> None:
    chosen = negotiate(
        query_format=query_format,
        path_suffix=path_suffix,
        accept=accept,
        content_type=content_type,
    )
    assert chosen is expected


@pytest.mark.parametrize(
    ("jsconfig", "default", "expected"),
    [
        (None, TextCase.CAMEL, TextCase.CAMEL),
        ("", TextCase.PASCAL, TextCase.PASCAL),
        ("TextCase:PascalCase", TextCase.CAMEL, TextCase.PASCAL),
        ("textcase:pascalcase", TextCase.CAMEL, TextCase.PASCAL),
        ("TextCase:CamelCase", TextCase.PASCAL, TextCase.CAMEL),
        ("tc:pc", TextCase.CAMEL, TextCase.PASCAL),
        ("tc:cc", TextCase.PASCAL, TextCase.CAMEL),
        ("TextCase:Default", TextCase.PASCAL, TextCase.PASCAL),
        (
            "ExcludeDefaultValues,TextCase:PascalCase,IncludeNullValues",
            TextCase.CAMEL,
            TextCase.PASCAL,
        ),
        ("TextCase:PascalCase,TextCase:CamelCase", TextCase.CAMEL, TextCase.CAMEL),
        ("EmitPascalCaseNames", TextCase.CAMEL, TextCase.PASCAL),
        ("epcn:false", TextCase.CAMEL, TextCase.CAMEL),
        ("eccn", TextCase.PASCAL, TextCase.CAMEL),
        ("TextCase:SnakeCase", TextCase.CAMEL, TextCase.CAMEL),
        ("TextCase:nonsense", TextCase.PASCAL, TextCase.PASCAL),
        ("::,,:", TextCase.CAMEL, TextCase.CAMEL),
        (" TextCase : PascalCase ", TextCase.CAMEL, TextCase.PASCAL),
    ],
)
def test_text_case(jsconfig: str | None, default: TextCase, expected: TextCase) -> None:
    assert text_case(jsconfig, default) is expected
