"""JWT bearer tokens: only a correctly signed, unexpired token with a Guid company claim passes."""

import asyncio
import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping
from typing import Any
from uuid import UUID

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given
from hypothesis import strategies as st

from budget_guard.auth import Identity, JwtAuthenticator, Role

COMPANY_A = UUID("3fa85f64-5717-4562-b3fc-2c963f66afa6")
SECRET = "a-shared-secret-of-at-least-32-bytes!!"
OTHER_SECRET = "another-shared-secret-of-32-bytes-too"


def claims(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "sub": "alice@example.com",
        "company_id": str(COMPANY_A),
        "exp": int(time.time()) + 300,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def authenticate(authenticator: JwtAuthenticator, headers: Mapping[str, str]) -> Identity | None:
    return asyncio.run(authenticator.authenticate(headers))


HS = JwtAuthenticator(key=SECRET, algorithms=["HS256"])


def hs_token(**overrides: Any) -> str:
    return jwt.encode(claims(**overrides), SECRET, algorithm="HS256")


def test_valid_token_gives_the_identity_it_describes() -> None:
    assert authenticate(HS, bearer(hs_token())) == Identity(
        "alice@example.com", COMPANY_A, Role.USER
    )


@pytest.mark.parametrize(
    "company",
    [
        "3FA85F64-5717-4562-B3FC-2C963F66AFA6",
        "3fa85f6457174562b3fc2c963f66afa6",
        "{3fa85f64-5717-4562-b3fc-2c963f66afa6}",
    ],
)
def test_company_claim_in_any_guid_form(company: str) -> None:
    identity = authenticate(HS, bearer(hs_token(company_id=company)))
    assert identity is not None and identity.company_id == COMPANY_A


@pytest.mark.parametrize(
    ("role", "expected"),
    [
        (None, Role.USER),
        ("user", Role.USER),
        ("admin", Role.ADMIN),
        ("Admin", Role.USER),  # role names are compared exactly
        (["reader", "admin"], Role.ADMIN),
        (["reader"], Role.USER),
        ([], Role.USER),
    ],
)
def test_role_claim_may_be_a_string_or_a_list(role: Any, expected: Role) -> None:
    identity = authenticate(HS, bearer(hs_token(role=role)))
    assert identity is not None and identity.role is expected


def test_custom_claim_names_and_admin_roles() -> None:
    authenticator = JwtAuthenticator(
        key=SECRET,
        algorithms=["HS256"],
        company_claim="https://example.com/tenant",
        role_claim="roles",
        admin_roles=("billing-admin", "superuser"),
    )
    token = hs_token(
        company_id=None, **{"https://example.com/tenant": str(COMPANY_A), "roles": ["superuser"]}
    )
    assert authenticate(authenticator, bearer(token)) == Identity(
        "alice@example.com", COMPANY_A, Role.ADMIN
    )


def test_token_without_sub_gets_a_generic_subject() -> None:
    identity = authenticate(HS, bearer(hs_token(sub=None)))
    assert identity is not None and identity.subject == "jwt"


def test_audience_and_issuer_must_match_when_configured() -> None:
    strict = JwtAuthenticator(
        key=SECRET, algorithms=["HS256"], audience="budget-guard", issuer="https://idp.example"
    )
    good = hs_token(aud="budget-guard", iss="https://idp.example")
    assert authenticate(strict, bearer(good)) is not None
    for token in (
        hs_token(aud="someone-else", iss="https://idp.example"),
        hs_token(aud="budget-guard", iss="https://evil.example"),
        hs_token(iss="https://idp.example"),  # no aud
        hs_token(aud="budget-guard"),  # no iss
    ):
        assert authenticate(strict, bearer(token)) is None


def test_leeway_accepts_a_token_just_expired() -> None:
    token = hs_token(exp=int(time.time()) - 30)
    assert authenticate(HS, bearer(token)) is None
    lenient = JwtAuthenticator(key=SECRET, algorithms=["HS256"], leeway=120)
    assert authenticate(lenient, bearer(token)) is not None


def _unsigned(payload: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(payload)}."


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(jwt.encode(claims(), OTHER_SECRET, algorithm="HS256"), id="bad-signature"),
        pytest.param(hs_token(exp=int(time.time()) - 10), id="expired"),
        pytest.param(hs_token(exp=None), id="no-exp"),
        pytest.param(hs_token(nbf=int(time.time()) + 600), id="not-yet-valid"),
        pytest.param(hs_token(aud="someone"), id="aud-but-none-configured"),
        pytest.param(_unsigned(claims()), id="alg-none"),
        pytest.param(jwt.encode(claims(), SECRET * 2, algorithm="HS512"), id="alg-not-allowed"),
        pytest.param(hs_token(company_id=None), id="no-company"),
        pytest.param(hs_token(company_id="acme"), id="company-not-guid"),
        pytest.param(hs_token(company_id=42), id="company-not-string"),
        pytest.param(hs_token(role={"name": "admin"}), id="role-object"),
        pytest.param(hs_token(role=["admin", 1]), id="role-list-not-strings"),
        pytest.param(hs_token()[:-4] + "AAAA", id="tampered-signature"),
        pytest.param("a.b.c", id="garbage"),
        pytest.param("....", id="dots"),
        pytest.param("eyJ" + "A" * 5000 + ".e.e", id="huge-header"),
    ],
)
def test_token_failing_any_check_is_not_authenticated(token: str) -> None:
    assert authenticate(HS, bearer(token)) is None


def test_token_must_come_as_a_bearer_token() -> None:
    assert authenticate(HS, {"x-api-key": hs_token()}) is None
    assert authenticate(HS, {"authorization": hs_token()}) is None
    assert authenticate(HS, {"authorization": f"bearer   {hs_token()} "}) is not None


@given(st.text(max_size=300))
def test_arbitrary_bearer_values_never_raise(value: str) -> None:
    assert authenticate(HS, {"authorization": f"Bearer {value}"}) is None


@given(
    st.lists(
        st.text(
            alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", max_size=60
        ),
        min_size=3,
        max_size=3,
    )
)
def test_arbitrary_three_part_tokens_never_raise(parts: list[str]) -> None:
    assert authenticate(HS, bearer(".".join(parts))) is None


@pytest.fixture(scope="module")
def rsa_private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _public_pem(private_key: Any) -> str:
    return (
        private_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def test_rs256_with_a_public_key(rsa_private_key: rsa.RSAPrivateKey) -> None:
    authenticator = JwtAuthenticator(key=_public_pem(rsa_private_key), algorithms=["RS256"])
    good = jwt.encode(claims(role="admin"), rsa_private_key, algorithm="RS256")
    identity = authenticate(authenticator, bearer(good))
    assert identity is not None and identity.role is Role.ADMIN
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert authenticate(authenticator, bearer(jwt.encode(claims(), other, "RS256"))) is None


def test_hs256_token_signed_with_the_rsa_public_key_is_refused(
    rsa_private_key: rsa.RSAPrivateKey,
) -> None:
    """The classic algorithm-confusion attack: the public key is public, so it must not be
    usable as an HMAC secret."""
    pem = _public_pem(rsa_private_key)
    authenticator = JwtAuthenticator(key=pem, algorithms=["RS256"])
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=")
    payload = base64.urlsafe_b64encode(json.dumps(claims()).encode()).rstrip(b"=")
    signing_input = header + b"." + payload
    signature = hmac.new(pem.encode(), signing_input, hashlib.sha256).digest()
    forged = (signing_input + b"." + base64.urlsafe_b64encode(signature).rstrip(b"=")).decode()
    assert authenticate(authenticator, bearer(forged)) is None


def test_es256_with_a_public_key() -> None:
    private_key = ec.generate_private_key(ec.SECP256R1())
    authenticator = JwtAuthenticator(key=_public_pem(private_key), algorithms=["ES256"])
    token = jwt.encode(claims(), private_key, algorithm="ES256")
    assert authenticate(authenticator, bearer(token)) is not None
    with pytest.raises(ValueError, match="does not fit algorithm ES384"):
        JwtAuthenticator(key=_public_pem(private_key), algorithms=["ES256", "ES384"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"key": SECRET, "algorithms": []}, "at least one"),
        ({"key": SECRET, "algorithms": ["none"]}, "'none' is not a supported"),
        ({"key": SECRET, "algorithms": ["HS999"]}, "'HS999' is not a supported"),
        ({"key": SECRET, "algorithms": ["HS256", "RS256"]}, "mix key types"),
        ({"key": "short-secret", "algorithms": ["HS256"]}, "too short for HS256"),
        ({"key": "", "algorithms": ["HS256"]}, "not a usable shared secret"),
        ({"key": "not a pem", "algorithms": ["RS256"]}, "not a usable PEM public key"),
    ],
)
def test_unusable_configuration_is_refused_at_construction(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        JwtAuthenticator(**kwargs)
    if kwargs["key"]:
        assert kwargs["key"] not in str(caught.value)


def test_rsa_public_key_as_hmac_secret_is_refused(rsa_private_key: rsa.RSAPrivateKey) -> None:
    with pytest.raises(ValueError, match="not a usable shared secret"):
        JwtAuthenticator(key=_public_pem(rsa_private_key), algorithms=["HS256"])
