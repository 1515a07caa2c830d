"""The `[auth]` table of budget-guard.toml: what it builds, and one-line errors naming the key."""

import time
import tomllib
from pathlib import Path
from typing import Any
from uuid import UUID

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from budget_guard.auth import (
    AuthConfigError,
    ChainAuthenticator,
    Identity,
    Role,
    authenticator_from_config,
)

COMPANY_A = UUID("3fa85f64-5717-4562-b3fc-2c963f66afa6")
COMPANY_B = UUID("9b2c1d3e-0000-4000-8000-00000000000b")
SECRET = "jwt-secret-that-is-at-least-32-bytes"


def auth_section(toml: str) -> dict[str, Any]:
    return tomllib.loads(toml)["auth"]


def token(key: Any, algorithm: str = "HS256", **extra: Any) -> str:
    payload = {"sub": "carol", "company_id": str(COMPANY_B), "exp": int(time.time()) + 60}
    return jwt.encode(payload | extra, key, algorithm=algorithm)


async def test_api_keys_as_in_the_issue() -> None:
    authenticator = authenticator_from_config(
        auth_section(
            """
            [[auth.api_keys]]
            key = "bg-live-company-a"
            company_id = "3fa85f64-5717-4562-b3fc-2c963f66afa6"
            role = "user"

            [[auth.api_keys]]
            key = "bg-live-ops"
            company_id = "{9b2c1d3e00004000800000000000000b}"
            role = "ADMIN"
            name = "ops"
            """
        )
    )
    assert await authenticator.authenticate({"authorization": "Bearer bg-live-company-a"}) == (
        Identity("api-key#0", COMPANY_A, Role.USER)
    )
    assert await authenticator.authenticate({"x-api-key": "bg-live-ops"}) == (
        Identity("ops", COMPANY_B, Role.ADMIN)
    )


async def test_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BG_KEY_A", "from-env-key-123")
    authenticator = authenticator_from_config(
        {"api_keys": [{"key_env": "BG_KEY_A", "company_id": str(COMPANY_A), "name": "env"}]}
    )
    identity = await authenticator.authenticate({"x-api-key": "from-env-key-123"})
    assert identity == Identity("env", COMPANY_A, Role.USER)


async def test_jwt_with_secret_and_claim_settings() -> None:
    authenticator = authenticator_from_config(
        auth_section(
            f"""
            [auth.jwt]
            secret = "{SECRET}"
            algorithms = ["HS256"]
            audience = "budget-guard"
            issuer = "https://idp.example"
            company_claim = "tenant"
            role_claim = "roles"
            admin_roles = ["ops"]
            leeway = 5
            """
        )
    )
    good = token(
        SECRET, aud="budget-guard", iss="https://idp.example", tenant=str(COMPANY_A), roles=["ops"]
    )
    assert await authenticator.authenticate({"authorization": f"Bearer {good}"}) == Identity(
        "carol", COMPANY_A, Role.ADMIN
    )
    assert await authenticator.authenticate({"authorization": f"Bearer {token(SECRET)}"}) is None


async def test_jwt_secret_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BG_JWT_SECRET", SECRET)
    authenticator = authenticator_from_config(
        {"jwt": {"secret_env": "BG_JWT_SECRET", "algorithms": ["HS256"]}}
    )
    assert await authenticator.authenticate({"authorization": f"Bearer {token(SECRET)}"})


async def test_jwt_public_key_file_relative_to_the_config(tmp_path: Path) -> None:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / "idp.pem").write_bytes(
        private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    authenticator = authenticator_from_config(
        {"jwt": {"public_key_file": "idp.pem", "algorithms": ["RS256", "PS256"]}},
        base_dir=tmp_path,
    )
    signed = token(private_key, "RS256")
    identity = await authenticator.authenticate({"authorization": f"Bearer {signed}"})
    assert identity == Identity("carol", COMPANY_B, Role.USER)


async def test_api_keys_and_jwt_together_form_a_chain() -> None:
    authenticator = authenticator_from_config(
        {
            "api_keys": [{"key": "bg-key-a", "company_id": str(COMPANY_A)}],
            "jwt": {"secret": SECRET, "algorithms": ["HS256"]},
        }
    )
    assert isinstance(authenticator, ChainAuthenticator)
    assert (await authenticator.authenticate({"x-api-key": "bg-key-a"})).company_id == COMPANY_A  # type: ignore[union-attr]
    from_jwt = await authenticator.authenticate({"authorization": f"Bearer {token(SECRET)}"})
    assert from_jwt is not None and from_jwt.company_id == COMPANY_B


A = str(COMPANY_A)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({}, "auth: configure"),
        ([], "auth: expected a table"),
        ({"apikeys": []}, "auth.apikeys: unknown key; did you mean api_keys?"),
        ({"api_keys": {"key": "k"}}, "auth.api_keys: expected one or more"),
        ({"api_keys": []}, "auth.api_keys: expected one or more"),
        ({"api_keys": ["k"]}, r"auth.api_keys\[0\]: expected a table"),
        ({"api_keys": [{"company_id": A}]}, r"auth.api_keys\[0\].key: missing"),
        ({"api_keys": [{"key": 5, "company_id": A}]}, r"auth.api_keys\[0\].key: expected a string"),
        ({"api_keys": [{"key": "a b", "company_id": A}]}, r"auth.api_keys\[0\].key must be"),
        ({"api_keys": [{"key": "", "company_id": A}]}, r"auth.api_keys\[0\].key must be"),
        (
            {"api_keys": [{"key": "k1", "key_env": "X", "company_id": A}]},
            r"auth.api_keys\[0\]: give key or key_env, not both",
        ),
        (
            {"api_keys": [{"key_env": "BG_UNSET_VARIABLE", "company_id": A}]},
            r"auth.api_keys\[0\].key_env: environment variable BG_UNSET_VARIABLE is not set",
        ),
        (
            {"api_keys": [{"key": "k1", "company_id": A}, {"key": "k2"}]},
            r"auth.api_keys\[1\].company_id: missing",
        ),
        (
            {"api_keys": [{"key": "k1", "company_id": A}, {"key": "k2", "company_id": "acme"}]},
            r"auth.api_keys\[1\].company_id: not a Guid",
        ),
        (
            {"api_keys": [{"key": "k1", "company_id": A, "role": "root"}]},
            r'auth.api_keys\[0\].role: expected "user" or "admin"',
        ),
        (
            {"api_keys": [{"key": "k1", "company_id": A, "compnay": A}]},
            r"auth.api_keys\[0\].compnay: unknown key; did you mean company_id\?",
        ),
        (
            {"api_keys": [{"key": "k1", "company_id": A}, {"key": "k1", "company_id": A}]},
            r"auth.api_keys\[1\].key: same key as auth.api_keys\[0\]",
        ),
        ({"jwt": "secret"}, "auth.jwt: expected a table"),
        ({"jwt": {"algorithms": ["HS256"]}}, "auth.jwt: give exactly one of"),
        (
            {"jwt": {"secret": SECRET, "secret_env": "X", "algorithms": ["HS256"]}},
            "auth.jwt: give exactly one of",
        ),
        ({"jwt": {"secret": SECRET}}, "auth.jwt.algorithms: missing"),
        ({"jwt": {"secret": SECRET, "algorithms": ["none"]}}, "auth.jwt.algorithms: 'none'"),
        ({"jwt": {"secret": SECRET, "algorithms": [256]}}, "auth.jwt.algorithms: expected a list"),
        (
            {"jwt": {"secret": SECRET, "algorithms": ["RS256"]}},
            "auth.jwt.algorithms: secret needs an HS",
        ),
        (
            {"jwt": {"public_key_file": "k.pem", "algorithms": ["HS256"]}},
            "auth.jwt.algorithms: public_key_file needs a public-key algorithm",
        ),
        ({"jwt": {"secret": "short", "algorithms": ["HS256"]}}, "auth.jwt.secret: key too short"),
        ({"jwt": {"secret": 1, "algorithms": ["HS256"]}}, "auth.jwt.secret: expected"),
        (
            {"jwt": {"secret_env": "BG_UNSET_VARIABLE", "algorithms": ["HS256"]}},
            "auth.jwt.secret_env: environment variable BG_UNSET_VARIABLE",
        ),
        (
            {"jwt": {"public_key_file": "/nonexistent/k.pem", "algorithms": ["RS256"]}},
            "auth.jwt.public_key_file: cannot read '/nonexistent/k.pem'",
        ),
        (
            {"jwt": {"secret": SECRET, "algorithms": ["HS256"], "leeway": -1}},
            "auth.jwt.leeway: expected a number",
        ),
        (
            {"jwt": {"secret": SECRET, "algorithms": ["HS256"], "audience": 7}},
            "auth.jwt.audience: expected a list",
        ),
        (
            {"jwt": {"secret": SECRET, "algorithms": ["HS256"], "company_claim": ""}},
            "auth.jwt.company_claim: expected a non-empty string",
        ),
        (
            {"jwt": {"secret": SECRET, "algorithms": ["HS256"], "admin": ["x"]}},
            "auth.jwt.admin: unknown key; did you mean admin_roles\\?",
        ),
    ],
)
def test_bad_config_names_the_exact_key(section: Any, message: str) -> None:
    with pytest.raises(AuthConfigError, match=f"^{message}"):
        authenticator_from_config(section)


def test_public_key_file_that_is_not_a_key(tmp_path: Path) -> None:
    (tmp_path / "k.pem").write_text("hello")
    with pytest.raises(AuthConfigError, match=r"^auth\.jwt\.public_key_file: not a usable PEM"):
        authenticator_from_config(
            {"jwt": {"public_key_file": str(tmp_path / "k.pem"), "algorithms": ["RS256"]}}
        )


def test_auth_config_error_is_a_value_error() -> None:
    assert issubclass(AuthConfigError, ValueError)
