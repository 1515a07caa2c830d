"""Authentication and authorization: request headers -> :class:`Identity` -> target company.

The endpoint and the proxy middleware share these authenticators; see :func:`resolve_company`
for the one authorization rule (users act for their own company, admins name any company).
"""

from budget_guard.auth.api_keys import ApiKey, ApiKeyAuthenticator
from budget_guard.auth.composition import CallableAuthenticator, ChainAuthenticator
from budget_guard.auth.config import AuthConfigError, authenticator_from_config
from budget_guard.auth.identity import (
    Authenticator,
    CompanyRequired,
    Forbidden,
    Identity,
    Role,
    resolve_company,
)
from budget_guard.auth.jwt_bearer import JwtAuthenticator

__all__ = [
    "ApiKey",
    "ApiKeyAuthenticator",
    "AuthConfigError",
    "Authenticator",
    "CallableAuthenticator",
    "ChainAuthenticator",
    "CompanyRequired",
    "Forbidden",
    "Identity",
    "JwtAuthenticator",
    "Role",
    "authenticator_from_config",
    "resolve_company",
]
