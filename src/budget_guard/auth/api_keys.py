"""Static API keys from configuration, each bound to one company and role.

Only SHA-256 digests of the keys are kept, and a presented key is compared against every digest
with ``hmac.compare_digest``: neither the response time nor a memory dump reveals a key.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from uuid import UUID

from budget_guard.auth.credentials import api_key_header, bearer_token, is_credential_text
from budget_guard.auth.guids import parse_guid
from budget_guard.auth.identity import Identity, Role

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ApiKey:
    """One configured key. ``key`` is kept out of ``repr``/``str`` so it cannot leak into logs.

    ``company_id`` is a ``uuid.UUID`` or a Guid string (with or without hyphens). An admin key
    needs none: an admin names the company on every request anyway."""

    key: str = field(repr=False)
    company_id: UUID | str | None = None
    role: Role = Role.USER
    name: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "role", Role(self.role))
        company = self.company_id
        if isinstance(company, str):
            parsed = parse_guid(company)
            if parsed is None:
                raise ValueError(f"ApiKey.company_id: {company!r} is not a Guid")
            object.__setattr__(self, "company_id", parsed)
        elif company is None and self.role is Role.USER:
            raise TypeError("ApiKey.company_id: a user key needs its company's Guid")
        elif company is not None and not isinstance(company, UUID):
            raise TypeError("ApiKey.company_id must be a uuid.UUID or a Guid string")


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("ascii")).digest()


class ApiKeyAuthenticator:
    """Accepts ``Authorization: Bearer <key>`` (OpenAI SDK, ServiceStack ``bearer_token``) or
    ``X-Api-Key: <key>`` (Anthropic-style clients).

    The identity's subject is the key's ``name``, or ``api-key#<n>`` (its position) when unnamed.
    """

    __slots__ = ("_accepted", "_entries")

    def __init__(self, keys: Iterable[ApiKey]) -> None:
        entries: list[tuple[bytes, Identity]] = []
        for index, api_key in enumerate(keys):
            subject = api_key.name or f"api-key#{index}"
            if not isinstance(api_key.key, str) or not is_credential_text(api_key.key):
                raise ValueError(
                    f"API key {subject!r} must be 1 to 8192 visible ASCII characters, no spaces"
                )
            digest = _digest(api_key.key)
            for known, other in entries:
                if hmac.compare_digest(known, digest):
                    raise ValueError(f"API key {subject!r} repeats the key of {other.subject!r}")
            company = api_key.company_id
            assert company is None or isinstance(company, UUID)  # parsed in __post_init__
            entries.append((digest, Identity(subject, company, api_key.role)))
        self._entries: tuple[tuple[bytes, Identity], ...] = tuple(entries)
        # Keys already accepted once, by their text: at most one entry per configured key,
        # since only a key that matched is kept. A dict lookup on a secret is not a timing
        # oracle: strings are only compared after their (per-process randomized) hashes
        # match, so no guess is ever compared byte by byte with a key.
        self._accepted: dict[str, Identity] = {}

    def __repr__(self) -> str:
        names = ", ".join(identity.subject for _, identity in self._entries)
        return f"ApiKeyAuthenticator({len(self._entries)} keys: {names})"

    async def authenticate(self, headers: Mapping[str, str]) -> Identity | None:
        for source, read in (("authorization", bearer_token), ("x-api-key", api_key_header)):
            candidate = read(headers)
            if candidate is None:
                continue
            identity = self._match(candidate)
            if identity is not None:
                logger.debug("API key %r accepted via %s", identity.subject, source)
                return identity
            logger.debug("unknown API key presented via %s", source)
        return None

    def _match(self, candidate: str) -> Identity | None:
        """Compare against every entry, without stopping early, so timing says nothing."""
        accepted = self._accepted.get(candidate)
        if accepted is not None:
            return accepted
        digest = _digest(candidate)
        found: Identity | None = None
        for known, identity in self._entries:
            if hmac.compare_digest(known, digest) and found is None:
                found = identity
        if found is not None:
            self._accepted[candidate] = found
        return found
