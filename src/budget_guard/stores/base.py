"""The one storage protocol every usage store implements, and the errors they share.

Stores know buckets and numbers; they do not know policies. The limit to judge against is
passed in on each call (the :class:`~budget_guard.budget.ledger.Ledger` looks it up), so that a
reservation can be granted or refused atomically inside the store.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable
from uuid import UUID

from budget_guard.budget.snapshot import UsageSnapshot
from budget_guard.budget.window import Window

IDEMPOTENCY_TTL_SECONDS = 24 * 3600
DEFAULT_MAX_IDEMPOTENCY_KEYS_PER_COMPANY = 100_000
"""Live caller-chosen idempotency keys one company may hold (see :class:`Dedupe.bounded`)."""

MAX_OBJECT_ID_CHARS = 256
"""Upstream object ids are untrusted strings; longer ones are refused, not stored."""


BREAKDOWN_KINDS = ("input", "cached_input", "cache_write", "cache_read", "output", "reasoning")
"""The raw token types a record can carry besides its budget tokens (see
:class:`~budget_guard.counting.TokenUsage`): shown next to the budget, never judged."""

_KINDS = frozenset(BREAKDOWN_KINDS)

Breakdown = Mapping[str, int]
"""Raw tokens by kind (keys from :data:`BREAKDOWN_KINDS`; an absent kind is 0)."""


def check_breakdown(breakdown: Breakdown | None) -> Breakdown | None:
    """``breakdown`` unchanged, or :class:`ValueError` for an unknown kind or a count that is
    not a non-negative whole number."""
    if breakdown is None:
        return None
    for kind, count in breakdown.items():
        if kind not in _KINDS or type(count) is not int or count < 0:  # bool is not int here
            if kind not in _KINDS:
                raise ValueError(f"unknown token kind {kind!r}")
            raise ValueError(f"{kind}: must be a non-negative whole number of tokens")
    return breakdown


class StoreError(Exception):
    """Base class of the errors a store raises on purpose."""


class StoreUnavailable(StoreError):
    """The store could not be reached or did not answer in time. A refused connection
    recorded nothing; a timeout may still land later, so retry with the same dedupe key."""


class StoreFull(StoreError):
    """The embedded store hit its configured bound while every company in it still had live
    usage. Dropping one would let it bypass its budget, so the store refuses loudly instead."""


class UsageOverflow(StoreError):
    """Recording would push a company's total beyond Int64 (the wire type). Nothing written."""


class IdempotencyConflict(StoreError):
    """The idempotency key was already used for a different request."""


class IdempotencyKeysExhausted(StoreError):
    """The company already holds its bound of live caller-chosen idempotency keys, so a new
    one is refused (nothing recorded). Only that company is refused: keys are counted per
    company so that one tenant minting fresh keys cannot crowd out any other. A retry with a
    key it already holds is still answered.

    ``retry_after``: seconds until the company's oldest live key lapses, when known."""

    def __init__(self, message: str, *, bound: int, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.bound = bound
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Dedupe:
    """Makes a record call idempotent: the same ``key`` within ``ttl`` records nothing more
    and returns the first call's snapshot. ``fingerprint`` tells a true retry from a reuse of
    the key for a different request."""

    key: str
    fingerprint: str = ""
    ttl: float = IDEMPOTENCY_TTL_SECONDS
    bounded: bool = False
    """True for a key the *caller* chose (the endpoint's ``Idempotency-Key``): it counts
    toward the company's bound of live keys, and a new one past the bound raises
    :class:`IdempotencyKeysExhausted`. False (the default) for the system's own keys (the
    guard's ``op:`` retry keys, ``settle:`` keys): one per request, short-lived, and never
    refused, since refusing one would drop usage that really happened (a budget bypass)."""


def settle_dedupe(reservation: Reservation, actual: int, ttl: float) -> Dedupe:
    """The dedupe key a settle records under, so settling twice, or replaying a settle the
    store did not answer, records the actual cost once."""
    return Dedupe(f"settle:{reservation.id}", str(actual), ttl)


def is_object_id(object_id: object) -> bool:
    """Whether ``object_id`` passes :func:`check_object_id` (without the exception)."""
    return (
        isinstance(object_id, str)
        and 0 < len(object_id) <= MAX_OBJECT_ID_CHARS
        and object_id.isascii()
        and object_id.isprintable()
        and " " not in object_id
    )


def check_object_id(object_id: str) -> str:
    """``object_id`` unchanged, or :class:`ValueError`: it comes from the upstream's reply, so
    it is bounded before it becomes a key (1 to :data:`MAX_OBJECT_ID_CHARS` printable ASCII
    characters, no spaces; real ids look like ``file-abc``, ``resp_abc``, ``vs_abc``)."""
    if not is_object_id(object_id):
        raise ValueError(
            f"an upstream object id must be 1 to {MAX_OBJECT_ID_CHARS} printable ASCII "
            "characters without spaces"
        )
    return object_id


def check_object_ids(object_ids: Sequence[str]) -> list[str]:
    """Every id of a batch checked by :func:`check_object_id` before any is used, so a bad
    id anywhere refuses the whole batch (:class:`ValueError`) and nothing is written. A lone
    string is refused too: iterated, it would be a batch of one-character ids."""
    if isinstance(object_ids, str | bytes):
        raise ValueError("a batch of upstream object ids must be a sequence of ids, not one id")
    return [check_object_id(object_id) for object_id in object_ids]


def check_object_ttl(ttl: float) -> float:
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 0 < ttl < float("inf"):
        raise ValueError("an object ownership ttl must be a positive number of seconds")
    return float(ttl)


@dataclass(frozen=True, slots=True)
class RecordResult:
    snapshot: UsageSnapshot
    replayed: bool = False
    """True when the dedupe key had been seen: nothing was recorded by this call."""


@dataclass(frozen=True, slots=True)
class Reservation:
    company_id: UUID
    id: str
    tokens: int
    granted: bool
    snapshot: UsageSnapshot = field(compare=False)


@runtime_checkable
class UsageStore(Protocol):
    """Every operation is atomic per company and O(1) amortized whatever the history."""

    window: Window
    remote: bool
    """True when a call can fail after it took effect (a lost reply), so that callers that
    retry must pass a :class:`Dedupe` key."""

    async def record(
        self,
        company_id: UUID,
        tokens: int,
        limit: int,
        *,
        dedupe: Dedupe | None = None,
        breakdown: Breakdown | None = None,
    ) -> RecordResult:
        """Add ``tokens`` to the budget and ``breakdown`` (raw tokens by kind) to the
        company's breakdown in the same bucket, in one atomic step; a replay adds neither."""
        ...

    async def read(self, company_id: UUID, limit: int) -> UsageSnapshot: ...

    async def reserve(self, company_id: UUID, tokens: int, limit: int) -> Reservation:
        """Hold ``tokens`` only if the company stays within budget with them. A reservation
        that is never settled or released lapses after the store's reservation TTL, so a
        crashed worker cannot pin a budget forever."""
        ...

    async def settle(
        self,
        reservation: Reservation,
        actual: int,
        limit: int,
        *,
        breakdown: Breakdown | None = None,
    ) -> UsageSnapshot:
        """Drop the hold and record ``actual`` (and ``breakdown``) in one atomic step;
        settling twice records once."""
        ...

    async def release(self, reservation: Reservation, limit: int) -> UsageSnapshot: ...

    async def extend(self, reservation: Reservation, limit: int) -> bool:
        """Keep a live hold for one more reservation TTL from now, so a request that runs
        longer than the TTL is still covered. False: the hold had already lapsed."""
        ...

    @property
    def reservation_ttl(self) -> float:
        """Seconds an unsettled reservation lives (and each ``extend`` adds)."""
        ...

    async def buckets(self, company_id: UUID) -> list[tuple[float, int]]:
        """The live buckets, oldest first, as ``(bucket start epoch seconds, tokens)``."""
        ...

    async def breakdown(self, company_id: UUID) -> dict[str, int]:
        """Raw tokens by kind recorded in the window (the same buckets as the budget), for
        every kind of :data:`BREAKDOWN_KINDS`. Read-only and off the hot path."""
        ...

    async def remember_object(self, company_id: UUID, object_id: str, ttl: float) -> None:
        """Record that ``company_id`` created ``object_id`` upstream, for ``ttl`` seconds.
        First owner wins: an id that already has a live owner is left unchanged (another
        company claiming it does not take it over, and the owner's ttl is not extended).
        :class:`ValueError` for an id outside :func:`check_object_id` or a ttl that is not
        a positive number."""
        ...

    async def object_owner(self, object_id: str) -> UUID | None:
        """The company that created ``object_id``, or ``None`` when none is known (never
        remembered, lapsed, or dropped by a bounded store): callers must deny on ``None``."""
        ...

    async def remember_objects(
        self, company_id: UUID, object_ids: Sequence[str], ttl: float
    ) -> None:
        """:meth:`remember_object` for each of ``object_ids`` (first owner wins per id; a
        duplicate id is harmless), in one store round trip: a response that creates many
        items (a batch, a vector store's files) costs one trip, not one per item. Every id
        and the ttl are checked first: a bad one raises :class:`ValueError` and nothing is
        written (never a partial write). An empty sequence makes no store call."""
        ...

    async def object_owners(self, object_ids: Sequence[str]) -> list[UUID | None]:
        """:meth:`object_owner` of each of ``object_ids``, in the given order, in one store
        round trip: a request that names many objects (its path and its body's references)
        is checked with one trip, not one per id. Every id is checked first
        (:class:`ValueError`); an empty sequence answers ``[]`` without a store call."""
        ...

    async def ping(self) -> None:
        """Raise :class:`StoreUnavailable` when the store cannot serve."""
        ...

    async def aclose(self) -> None: ...


# -- run-time limits and threshold alerts (issue 15) ------------------------------------------

ThresholdSink = Callable[[UUID, float, UsageSnapshot], None]
"""Told ``(company, threshold, snapshot after the crossing)`` once per crossing the store
decided. Called on the event loop and must not block or raise (it hands off to a queue)."""


def check_thresholds(thresholds: Iterable[float]) -> tuple[float, ...]:
    """Sorted, distinct fractions of the limit in (0, 10]; at most :data:`MAX_THRESHOLDS`, so
    the per-company "fired" set fits a small bitmask in the store."""
    out: set[float] = set()
    for value in thresholds:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("an alert threshold must be a number (a fraction of the limit)")
        if not 0 < value <= 10:
            raise ValueError("an alert threshold must be above 0 and at most 10")
        out.add(float(value))
    if len(out) > MAX_THRESHOLDS:
        raise ValueError(f"at most {MAX_THRESHOLDS} alert thresholds")
    return tuple(sorted(out))


MAX_THRESHOLDS = 16


def crossed_thresholds(
    thresholds: tuple[float, ...], fired: int, before: int, after: int, limit: int
) -> tuple[int, int]:
    """The store-side rule, shared in spirit with ``usage.lua``: ``(new fired mask, mask of
    thresholds crossed now)``. A threshold the usage was under before this charge is armed
    again (the window moved, or the limit was raised), and one the usage is at or over after
    it fires if armed. Nothing fires for a zero limit (every company would be "over" it)."""
    if limit <= 0 or after <= before:
        return fired, 0
    crossed = 0
    for i, threshold in enumerate(thresholds):
        bit = 1 << i
        at = threshold * limit
        if before < at:
            fired &= ~bit
        if after >= at and not fired & bit:
            fired |= bit
            crossed |= bit
    return fired, crossed


@runtime_checkable
class LimitOverrides(Protocol):
    """Run-time per-company limits kept in the store, so every worker and host sees one value.
    Optional: a store without these methods simply has no run-time overrides."""

    async def limit_override(self, company_id: UUID) -> int | None: ...

    async def set_limit_override(self, company_id: UUID, limit: int | None) -> int | None:
        """Set (or with ``None`` clear) the override; returns the previous one, atomically."""
        ...

    async def limit_overrides(self) -> dict[UUID, int]: ...


@runtime_checkable
class ThresholdWatch(Protocol):
    """A store that decides threshold crossings atomically with the charge (see
    :func:`crossed_thresholds`); optional like :class:`LimitOverrides`."""

    def watch_thresholds(self, thresholds: tuple[float, ...], sink: ThresholdSink) -> None: ...
