"""The authorization rule: users act for their own company, admins for the company they name."""

from uuid import UUID

import pytest

from budget_guard.auth import CompanyRequired, Forbidden, Identity, Role, resolve_company
from budget_guard.auth.guids import parse_guid

COMPANY_A = UUID("3fa85f64-5717-4562-b3fc-2c963f66afa6")
COMPANY_B = UUID("9b2c1d3e-0000-4000-8000-00000000000b")

USER_A = Identity("alice", COMPANY_A, Role.USER)
ADMIN_A = Identity("ops", COMPANY_A, Role.ADMIN)


def test_user_without_company_acts_for_own_company() -> None:
    assert resolve_company(USER_A, None) == COMPANY_A


def test_user_naming_own_company_is_allowed() -> None:
    assert resolve_company(USER_A, COMPANY_A) == COMPANY_A


def test_user_of_company_a_naming_company_b_is_forbidden() -> None:
    with pytest.raises(Forbidden):
        resolve_company(USER_A, COMPANY_B)


def test_admin_may_name_any_company() -> None:
    assert resolve_company(ADMIN_A, COMPANY_B) == COMPANY_B
    assert resolve_company(ADMIN_A, COMPANY_A) == COMPANY_A


def test_admin_must_name_a_company() -> None:
    with pytest.raises(CompanyRequired, match="CompanyId"):
        resolve_company(ADMIN_A, None)


def test_identity_is_immutable() -> None:
    with pytest.raises(AttributeError):
        USER_A.role = Role.ADMIN  # type: ignore[misc]


@pytest.mark.parametrize(
    "text",
    [
        "3fa85f64-5717-4562-b3fc-2c963f66afa6",
        "3FA85F64-5717-4562-B3FC-2C963F66AFA6",
        "3fa85f6457174562b3fc2c963f66afa6",
        "{3fa85f64-5717-4562-b3fc-2c963f66afa6}",
        "{3fa85f6457174562b3fc2c963f66afa6}",
        "  3fa85f64-5717-4562-b3fc-2c963f66afa6 ",
    ],
)
def test_guid_forms_a_dotnet_client_writes_are_accepted(text: str) -> None:
    assert parse_guid(text) == COMPANY_A


@pytest.mark.parametrize(
    "value",
    [
        "",
        "not-a-guid",
        "3fa85f64-5717-4562-b3fc-2c963f66afa",
        "{3fa85f64-5717-4562-b3fc-2c963f66afa6",
        "3fa85f645717-4562-b3fc-2c963f66afa6",
        "urn:uuid:3fa85f64-5717-4562-b3fc-2c963f66afa6",
        "3fa85f64-5717-4562-b3fc-2c963f66afaz",
        "３fa85f64-5717-4562-b3fc-2c963f66afa6",
        12345,
        None,
        ["3fa85f64-5717-4562-b3fc-2c963f66afa6"],
    ],
)
def test_anything_else_is_not_a_guid(value: object) -> None:
    assert parse_guid(value) is None
