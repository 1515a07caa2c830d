"""API keys from config, presented the way the OpenAI SDK, ServiceStack and Anthropic clients do."""

import asyncio
from collections.abc import Mapping
from uuid import UUID

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.datastructures import Headers

from budget_guard.auth import ApiKey, ApiKeyAuthenticator, Identity, Role

COMPANY_A = UUID("3fa85f64-5717-4562-b3fc-2c963f66afa6")
COMPANY_B = UUID("9b2c1d3e-0000-4000-8000-00000000000b")
KEY_A = "bg-live-company-a-0123456789"
KEY_ADMIN = "bg-live-admin-9876543210"

AUTH = ApiKeyAuthenticator(
    [
        ApiKey(KEY_A, COMPANY_A, name="company-a"),
        ApiKey(KEY_ADMIN, COMPANY_B, Role.ADMIN),
    ]
)


def authenticate(headers: Mapping[str, str]) -> Identity | None:
    return asyncio.run(AUTH.authenticate(headers))


@pytest.mark.parametrize(
    "headers",
    [
        {"authorization": f"Bearer {KEY_A}"},
        {"authorization": f"bearer {KEY_A}"},
        {"authorization": f"BEARER {KEY_A}"},
        {"authorization": f"  Bearer    {KEY_A}  "},
        {"authorization": f"Bearer\t{KEY_A}"},
        {"x-api-key": KEY_A},
        {"x-api-key": f" {KEY_A} "},
        {"authorization": "Bearer some-jwt-or-other-key", "x-api-key": KEY_A},
    ],
)
def test_known_key_is_accepted(headers: dict[str, str]) -> None:
    assert authenticate(headers) == Identity("company-a", COMPANY_A, Role.USER)


def test_unnamed_key_gets_a_positional_subject_and_its_role() -> None:
    assert authenticate({"x-api-key": KEY_ADMIN}) == Identity("api-key#1", COMPANY_B, Role.ADMIN)


async def test_starlette_headers_from_an_asgi_scope_work() -> None:
    scope = {"type": "http", "headers": [(b"authorization", f"Bearer {KEY_A}".encode())]}
    identity = await AUTH.authenticate(Headers(scope=scope))
    assert identity is not None and identity.company_id == COMPANY_A


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": KEY_A},  # no scheme
        {"authorization": f"Basic {KEY_A}"},
        {"authorization": f"Bearer{KEY_A}"},
        {"authorization": f"Bearer {KEY_A} extra"},
        {"authorization": "Bearer"},
        {"authorization": "Bearer "},
        {"authorization": ""},
        {"x-api-key": ""},
        {"x-api-key": "   "},
        {"authorization": f"Bearer {KEY_A}x"},
        {"authorization": f"Bearer {KEY_A[:-1]}"},
        {"authorization": f"Bearer {KEY_A.upper()}"},
        {"authorization": f"Bearer {KEY_A}é"},
        {"authorization": f"Bearér {KEY_A}"},
        {"x-api-key": f"{KEY_A}\x00"},
        {"x-api-key": f"{KEY_A} {KEY_A}"},
        {"authorization": "Bearer " + "A" * 1_000_000},
        {"x-api-key": KEY_A * 100_000},
    ],
)
def test_anything_else_is_not_authenticated(headers: dict[str, str]) -> None:
    assert authenticate(headers) is None


@given(st.dictionaries(st.sampled_from(["authorization", "x-api-key", "cookie"]), st.text()))
def test_arbitrary_header_values_never_raise(headers: dict[str, str]) -> None:
    assert authenticate(headers) is None


def test_role_given_as_text_is_coerced() -> None:
    assert ApiKey(KEY_A, COMPANY_A, "admin").role is Role.ADMIN  # type: ignore[arg-type]


def test_company_may_be_a_guid_string_in_either_format() -> None:
    assert ApiKey(KEY_A, str(COMPANY_A)).company_id == COMPANY_A
    assert ApiKey(KEY_A, COMPANY_A.hex).company_id == COMPANY_A


def test_company_that_is_not_a_guid_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="company_id"):
        ApiKey(KEY_A, "acme")
    with pytest.raises(TypeError, match="company_id"):
        ApiKey(KEY_A, 42)  # type: ignore[arg-type]


def test_a_user_key_needs_a_company_and_an_admin_key_does_not() -> None:
    with pytest.raises(TypeError, match="company_id"):
        ApiKey(KEY_A)
    assert ApiKey(KEY_A, role=Role.ADMIN).company_id is None


@pytest.mark.parametrize("bad", ["", "has space", "non-ascii-é", "tab\tinside", "x" * 9000])
def test_unusable_configured_key_is_refused_without_echoing_it(bad: str) -> None:
    with pytest.raises(ValueError) as caught:
        ApiKeyAuthenticator([ApiKey(bad, COMPANY_A, name="broken")])
    assert "broken" in str(caught.value)
    if bad:
        assert bad not in str(caught.value)


def test_duplicate_key_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValueError, match=r"'second'.*'first'") as caught:
        ApiKeyAuthenticator(
            [ApiKey(KEY_A, COMPANY_A, name="first"), ApiKey(KEY_A, COMPANY_B, name="second")]
        )
    assert KEY_A not in str(caught.value)
