"""JWT bearer tokens issued by the host application's identity provider (PyJWT).

The algorithm list comes from configuration only (never from the token, RFC 8725 §2.1), may not
mix key families (an RSA public key must never be usable as an HMAC secret), and the key is parsed
once here so a bad key fails at start-up rather than on the first request.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import jwt
from jwt.algorithms import Algorithm, HMACAlgorithm, get_default_algorithms

from budget_guard.auth.credentials import bearer_token
from budget_guard.auth.guids import parse_guid
from budget_guard.auth.identity import Identity, Role

logger = logging.getLogger(__name__)

_MAX_SUBJECT_CHARS = 200


def _family(algorithm: Algorithm) -> str:
    """Algorithms of one family read the same key; the family name is the key type's."""
    if isinstance(algorithm, HMACAlgorithm):
        return "HMAC"
    return type(algorithm).__name__.removesuffix("Algorithm").replace("RSAPSS", "RSA")


def check_algorithms(algorithms: Sequence[str]) -> tuple[str, ...]:
    """The validated algorithm names; ``ValueError`` for none, "none", unknown or mixed families."""
    names = tuple(algorithms)
    if not names:
        raise ValueError("at least one algorithm is required")
    supported = get_default_algorithms()
    for name in names:
        if not isinstance(name, str) or name.lower() == "none" or name not in supported:
            known = ", ".join(n for n in supported if n != "none")
            raise ValueError(f"{name!r} is not a supported signing algorithm ({known})")
    families = {_family(supported[name]) for name in names}
    if len(families) > 1:
        raise ValueError(f"algorithms mix key types ({', '.join(sorted(families))}); use one")
    return names


def is_hmac(algorithms: Sequence[str]) -> bool:
    """Whether these (already checked) algorithms take a shared secret rather than a public key."""
    return isinstance(get_default_algorithms()[algorithms[0]], HMACAlgorithm)


def _prepare_key(key: str | bytes, algorithms: tuple[str, ...]) -> Any:
    """The parsed verification key; messages never quote the key."""
    supported = get_default_algorithms()
    try:
        prepared = supported[algorithms[0]].prepare_key(key)
    except (jwt.InvalidKeyError, ValueError, TypeError):
        kind = "shared secret" if is_hmac(algorithms) else "PEM public key"
        raise ValueError(f"not a usable {kind} for {algorithms[0]}") from None
    if hasattr(prepared, "public_key"):  # a private key was given: verification needs only its half
        prepared = prepared.public_key()
    for name in algorithms:
        try:
            supported[name].prepare_key(prepared)
        except (jwt.InvalidKeyError, ValueError, TypeError):
            raise ValueError(f"the key does not fit algorithm {name}") from None
        weakness = supported[name].check_key_length(prepared)
        if weakness is not None:
            raise ValueError(f"key too short for {name}: {weakness}")
    return prepared


class JwtAuthenticator:
    """Accepts ``Authorization: Bearer <jwt>`` signed with the configured key.

    The token must carry ``exp``; ``aud``/``iss`` must match when configured (and a token with an
    ``aud`` is refused when no audience is configured, as PyJWT does; with several audiences any
    one matching suffices). ``company_claim`` must hold
    a Guid; ``role_claim`` (a string or a list of strings, optional) makes the caller an admin when
    any value is in ``admin_roles``. The identity's subject is the ``sub`` claim.
    """

    def __init__(
        self,
        *,
        key: str,
        algorithms: Sequence[str],
        audience: str | Sequence[str] | None = None,
        issuer: str | None = None,
        company_claim: str = "company_id",
        role_claim: str = "role",
        admin_roles: Collection[str] = ("admin",),
        leeway: float = 0,
    ) -> None:
        self._algorithms = check_algorithms(algorithms)
        self._key = _prepare_key(key, self._algorithms)
        self._audience = audience
        self._issuer = issuer
        self._company_claim = company_claim
        self._role_claim = role_claim
        self._admin_roles = frozenset(admin_roles)
        self._leeway = leeway
        self._decoder = jwt.PyJWT(options={"require": ["exp"], "enforce_minimum_key_length": True})

    def __repr__(self) -> str:
        return (
            f"JwtAuthenticator(algorithms={list(self._algorithms)!r}, audience={self._audience!r},"
            f" issuer={self._issuer!r}, company_claim={self._company_claim!r})"
        )

    async def authenticate(self, headers: Mapping[str, str]) -> Identity | None:
        token = bearer_token(headers)
        if token is None or token.count(".") != 2:
            return None
        try:
            claims = self._decoder.decode(
                token,
                self._key,
                algorithms=list(self._algorithms),
                audience=self._audience,
                issuer=self._issuer,
                leeway=self._leeway,
            )
        except (jwt.PyJWTError, ValueError, TypeError, OverflowError, RecursionError) as exc:
            logger.debug("JWT rejected: %s", type(exc).__name__)
            return None
        return self._identity(claims)

    def _identity(self, claims: Mapping[str, Any]) -> Identity | None:
        company_id = parse_guid(claims.get(self._company_claim))
        if company_id is None:
            logger.debug("JWT rejected: claim %r is missing or not a Guid", self._company_claim)
            return None
        roles = claims.get(self._role_claim)
        if isinstance(roles, str):
            roles = [roles]
        elif roles is None:
            roles = []
        elif not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            logger.debug("JWT rejected: claim %r is not a string or list", self._role_claim)
            return None
        role = Role.ADMIN if any(r in self._admin_roles for r in roles) else Role.USER
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            subject = "jwt"
        return Identity(subject[:_MAX_SUBJECT_CHARS], company_id, role)
