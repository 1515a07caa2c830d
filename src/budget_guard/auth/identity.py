"""Who is calling, and which company they may act for.

Every authenticator reduces a request to an :class:`Identity`; the endpoint and the middleware only
ever reason about identities, so adding a new way to log in never touches the authorization rule.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol, runtime_checkable
from uuid import UUID


class Role(StrEnum):
    """What an identity may do: a user acts for its own company, an admin for any company."""

    USER = "user"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated caller.

    ``subject`` is a non-secret label that is safe to log (an API key's configured name, a JWT
    ``sub``); it is never the credential itself.
    """

    subject: str
    company_id: UUID | None
    """The caller's own company; None only for an admin, who names one on every request."""
    role: Role


@runtime_checkable
class Authenticator(Protocol):
    """Turns request headers into an identity, or ``None`` when these headers are not its kind.

    ``headers`` maps lower-case header names to values, e.g. ``starlette.datastructures.Headers``
    built from an ASGI scope. Implementations must return ``None`` (never raise) for hostile or
    malformed credentials, so that a chain can try the next authenticator.
    """

    async def authenticate(self, headers: Mapping[str, str]) -> Identity | None: ...


class Forbidden(Exception):
    """The caller named a company its role does not allow it to act for (HTTP 403)."""


class CompanyRequired(Exception):
    """An admin belongs to no single target company, so it must name ``CompanyId`` (HTTP 400)."""


def resolve_company(identity: Identity, requested: UUID | None) -> UUID:
    """The company a request acts for, enforcing that only admins cross company boundaries.

    Admins must always name the company: defaulting an admin to its own company would silently
    charge the operator's company for a turn meant for a customer.
    """
    if identity.role is Role.ADMIN:
        if requested is None:
            raise CompanyRequired("CompanyId is required for an admin caller")
        return requested
    if requested is None or requested == identity.company_id:
        return identity.company_id
    raise Forbidden("not allowed to act for another company")
