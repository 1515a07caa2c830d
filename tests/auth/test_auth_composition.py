"""Plugging in the host application's own session auth, and chaining authenticators."""

from collections.abc import Mapping
from uuid import UUID

import pytest

from budget_guard.auth import (
    ApiKey,
    ApiKeyAuthenticator,
    Authenticator,
    CallableAuthenticator,
    ChainAuthenticator,
    Identity,
    JwtAuthenticator,
    Role,
)

COMPANY_A = UUID("3fa85f64-5717-4562-b3fc-2c963f66afa6")
COMPANY_B = UUID("9b2c1d3e-0000-4000-8000-00000000000b")
SESSIONS = {"s3ss10n": Identity("bob", COMPANY_B, Role.USER)}


async def session_lookup(headers: Mapping[str, str]) -> Identity | None:
    cookie = headers.get("cookie", "")
    return SESSIONS.get(cookie.removeprefix("session="))


async def test_hook_turns_the_host_session_into_an_identity() -> None:
    hook = CallableAuthenticator(session_lookup)
    assert await hook.authenticate({"cookie": "session=s3ss10n"}) == SESSIONS["s3ss10n"]
    assert await hook.authenticate({"cookie": "session=unknown"}) is None
    assert "session_lookup" in repr(hook)


async def test_hook_returning_something_else_is_a_programming_error() -> None:
    async def sloppy(headers: Mapping[str, str]) -> Identity | None:
        return "bob"  # type: ignore[return-value]

    with pytest.raises(TypeError, match="not Identity"):
        await CallableAuthenticator(sloppy).authenticate({})


async def test_hook_errors_propagate_instead_of_becoming_a_silent_401() -> None:
    async def broken(headers: Mapping[str, str]) -> Identity | None:
        raise ConnectionError("session store down")

    with pytest.raises(ConnectionError):
        await CallableAuthenticator(broken).authenticate({})


async def test_chain_returns_the_first_identity_found() -> None:
    api_keys = ApiKeyAuthenticator([ApiKey("bg-live-company-a", COMPANY_A, name="a")])
    chain = ChainAuthenticator(
        [
            api_keys,
            JwtAuthenticator(key="x" * 32, algorithms=["HS256"]),
            CallableAuthenticator(session_lookup),
        ]
    )
    assert isinstance(chain, Authenticator)
    assert await chain.authenticate({"x-api-key": "bg-live-company-a"}) == Identity(
        "a", COMPANY_A, Role.USER
    )
    both = {"x-api-key": "bg-live-company-a", "cookie": "session=s3ss10n"}
    assert (await chain.authenticate(both)).subject == "a"  # type: ignore[union-attr]
    only_cookie = {"authorization": "Bearer not-a-key", "cookie": "session=s3ss10n"}
    assert await chain.authenticate(only_cookie) == SESSIONS["s3ss10n"]
    assert await chain.authenticate({"authorization": "Bearer nope"}) is None


async def test_empty_chain_authenticates_nobody() -> None:
    assert await ChainAuthenticator([]).authenticate({"x-api-key": "anything"}) is None
