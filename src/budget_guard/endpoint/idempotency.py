"""``Idempotency-Key``: a client that retries after a timeout is counted once.

The key is scoped by the caller (``Identity.subject``) so two callers can never collide, and
the fingerprint is the company and the token count, so a key reused for a different turn is
told apart from a true retry. The store keeps the key with the usage in one atomic step.

Stores scope keys per company. That is enough for users, who can only ever act for their
own company; an admin can name any company, so for admins the key is first *claimed* in a
per-caller namespace (a zero-token record under a company id derived from the subject), which
turns "same key, other company" into the same conflict as "same key, other token count".
A claim is itself idempotent, so a retry after a 503 between the two steps still records once.

Keys are client-chosen, so they are ``bounded``: each company holds at most the store's
``max_idempotency_keys_per_company`` live keys, and a new key past that is refused for that
company alone (the store's ``IdempotencyKeysExhausted``, answered 429). An admin's keys count
against the admin's own claim namespace, not against the company it names: the claim is
bounded and every key in a company needs a live claim, so an admin can neither use up a
company's allowance nor exceed its own.
"""

from __future__ import annotations

import re
from dataclasses import replace
from uuid import UUID, uuid5

from budget_guard.auth import Identity, Role
from budget_guard.budget.ledger import Ledger
from budget_guard.stores import Dedupe, RecordResult

__all__ = [
    "IDEMPOTENCY_HEADER",
    "MAX_KEY_CHARS",
    "InvalidIdempotencyKey",
    "read_idempotency_key",
    "record_once",
]

IDEMPOTENCY_HEADER = "idempotency-key"
MAX_KEY_CHARS = 255
_KEY = re.compile(r"[\x20-\x7e]+")
_CLAIM_NAMESPACE = UUID("8b0f3c2e-6a51-4d8e-9f0b-5c1d2e3f4a5b")


class InvalidIdempotencyKey(Exception):
    """The header is present but unusable (empty, repeated, too long, not printable ASCII)."""


def read_idempotency_key(values: list[str]) -> str | None:
    """The key the client sent, or ``None`` when it sent none.

    ``values`` are all the header's values (a repeated header is ambiguous and refused). The
    quoted form of the IETF draft (a Structured Field string, ``"abc"``) and the bare form
    most clients send are both accepted and mean the same key.
    """
    if not values:
        return None
    if len(values) > 1:
        raise InvalidIdempotencyKey("Idempotency-Key must be sent once")
    key = values[0].strip()
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if not key or len(key) > MAX_KEY_CHARS or _KEY.fullmatch(key) is None:
        raise InvalidIdempotencyKey(
            f"Idempotency-Key must be 1 to {MAX_KEY_CHARS} printable ASCII characters"
        )
    return key


def _scoped(identity: Identity, key: str) -> str:
    # Length-prefixed so no subject/key pair can spell another pair's scoped key.
    return f"{len(identity.subject)}:{identity.subject}:{key}"


def _fingerprint(company_id: UUID, tokens: int) -> str:
    return f"{company_id.hex}:{tokens}"


def _claims_company(identity: Identity) -> UUID:
    return uuid5(_CLAIM_NAMESPACE, identity.subject)


async def record_once(
    ledger: Ledger, identity: Identity, company_id: UUID, tokens: int, key: str | None
) -> RecordResult:
    """Record ``tokens`` for ``company_id``, at most once per caller and key.

    Raises the store's ``IdempotencyConflict`` for a key reused with a different body, and
    its ``StoreUnavailable`` / ``StoreFull`` / ``UsageOverflow`` /
    ``IdempotencyKeysExhausted`` unchanged.
    """
    if key is None:
        return await ledger.record(company_id, tokens)
    dedupe = Dedupe(_scoped(identity, key), _fingerprint(company_id, tokens), bounded=True)
    if identity.role is Role.ADMIN:
        # Limit 0 and no tokens: the claim records nothing and asks no limit provider.
        await ledger.store.record(_claims_company(identity), 0, 0, dedupe=dedupe)
        dedupe = replace(dedupe, bounded=False)  # counted once, in the admin's namespace
    return await ledger.record(company_id, tokens, dedupe=dedupe)
