"""The embedded, zero-setup usage store: one process, no server.

Each company is a ring of ``n + 1`` bucket counters plus a running total, so recording is a
couple of array writes. Companies whose window has emptied are dropped by a
:class:`cachetools.TTLCache`: every write refreshes the company's entry for one window plus
one bucket, by which time all of its buckets have expired, so the cache only ever drops
companies with no live usage. If the bound is reached with every company live, the store
raises :class:`StoreFull` rather than evict one (an evicted company would start from zero:
a budget bypass).

Idempotency keys are bounded twice: per company (``max_idempotency_keys_per_company``, for
the keys callers choose), so one tenant minting fresh keys is refused on its own
(:class:`IdempotencyKeysExhausted`) and crowds out no other company; and in total
(``max_idempotency_keys``), the process's memory backstop (:class:`StoreFull`).
"""

from __future__ import annotations

import logging
import secrets
import threading
from array import array
from collections import deque
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from cachetools import TLRUCache, TTLCache

from budget_guard.budget.clock import Clock, system_clock
from budget_guard.budget.snapshot import UsageSnapshot
from budget_guard.budget.window import INT64_MAX, Window
from budget_guard.stores.base import (
    BREAKDOWN_KINDS,
    DEFAULT_MAX_IDEMPOTENCY_KEYS_PER_COMPANY,
    Breakdown,
    Dedupe,
    IdempotencyConflict,
    IdempotencyKeysExhausted,
    RecordResult,
    Reservation,
    StoreFull,
    ThresholdSink,
    UsageOverflow,
    check_breakdown,
    check_object_id,
    check_object_ids,
    check_object_ttl,
    check_thresholds,
    crossed_thresholds,
    settle_dedupe,
)

_log = logging.getLogger("budget_guard.stores.memory")

DEFAULT_MAX_COMPANIES = 1_000_000
DEFAULT_MAX_IDEMPOTENCY_KEYS = 1_000_000
DEFAULT_MAX_OBJECTS = 1_000_000

_Key = tuple[UUID, str]
"""(company, dedupe key)"""
_KeyEntry = tuple[str, int, int, float, bool]
"""(fingerprint, tokens used, token limit, lapses at, bounded) of one live dedupe key"""


class _NoEvictTTLCache(TTLCache[UUID, "_Account"]):
    """A TTLCache that expires entries but refuses to evict a live one to make room."""

    def popitem(self) -> tuple[UUID, _Account]:
        raise StoreFull(
            f"memory store: {int(self.maxsize)} companies have live usage; raise "
            "store.max_companies or use the Redis store"
        )


class _Account:
    __slots__ = (
        "fired",
        "head",
        "kinds",
        "refreshed_at",
        "reservations",
        "reserved",
        "ring",
        "used",
    )

    def __init__(self, size: int, head: int) -> None:
        self.ring = array("q", bytes(8 * size))
        # kind -> a ring like ``ring`` of that kind's raw tokens; made on a kind's first
        # record, so an account that never gets a breakdown pays nothing for it.
        self.kinds: dict[str, array[int]] = {}
        self.head = head
        self.used = 0
        self.reserved = 0
        self.refreshed_at = float("-inf")
        self.fired = 0  # bitmask of the alert thresholds that fired and are not re-armed
        # reservation id -> (tokens, lapses at); insertion order is lapse order (one TTL).
        self.reservations: dict[str, tuple[int, float]] = {}


class MemoryStore:
    remote = False
    """Nothing between caller and store can lose a reply, so no retry keys are needed."""

    def __init__(
        self,
        window: Window | None = None,
        *,
        clock: Clock = system_clock,
        max_companies: int = DEFAULT_MAX_COMPANIES,
        max_idempotency_keys: int = DEFAULT_MAX_IDEMPOTENCY_KEYS,
        max_idempotency_keys_per_company: int = DEFAULT_MAX_IDEMPOTENCY_KEYS_PER_COMPANY,
        max_objects: int = DEFAULT_MAX_OBJECTS,
        reservation_ttl: float = 300.0,
    ) -> None:
        self.window = window or Window()
        self._clock = clock
        self._size = self.window.buckets + 1
        self._reservation_ttl = reservation_ttl
        self._refresh_every = float(self.window.bucket_seconds)
        self._accounts = _NoEvictTTLCache(
            maxsize=max_companies,
            ttl=self.window.seconds + 2 * self.window.bucket_seconds + reservation_ttl,
            timer=clock,
        )
        if min(max_idempotency_keys, max_idempotency_keys_per_company, max_objects) < 1:
            raise ValueError("the memory store's bounds must be at least 1")
        self._max_keys = max_idempotency_keys
        self._max_company_keys = max_idempotency_keys_per_company
        self._keys: dict[_Key, _KeyEntry] = {}
        # One queue per key ttl, so that each queue is in lapse order and lapsed keys leave
        # from the fronts in O(1) amortized. (One queue for all ttls let a 24 h key at the
        # front hold back every 10-minute key behind it, and those still counted.)
        self._key_order: dict[float, deque[tuple[float, _Key]]] = {}
        # company -> its live bounded keys, oldest first (key -> lapses at): the count the
        # per-company bound is checked against, and the oldest lapse for Retry-After.
        self._company_keys: dict[UUID, dict[str, float]] = {}
        # object id -> (owner, lapses at); evicting an entry early (at the bound, least
        # recently used first) only ever denies its owner, never grants another company.
        self._objects: TLRUCache[str, tuple[UUID, float]] = TLRUCache(
            maxsize=max_objects, ttu=lambda _key, value, _now: value[1], timer=clock
        )
        self._lock = threading.Lock()
        self._overrides: dict[UUID, int] = {}
        self._thresholds: tuple[float, ...] = ()
        self._sink: ThresholdSink | None = None

    # -- internals -------------------------------------------------------------------------

    def _account(self, company_id: UUID, now: float, *, create: bool) -> _Account | None:
        acct = self._accounts.get(company_id)
        bucket = self.window.bucket_of(now)
        if acct is None:
            if not create:
                return None
            acct = _Account(self._size, bucket)
            self._keep(company_id, acct, now)
            return acct
        self._advance(acct, bucket)
        self._lapse_reservations(acct, now)
        return acct

    def _advance(self, acct: _Account, bucket: int) -> None:
        """Drop buckets that left the window. A clock that went back keeps writing into the
        newest bucket seen (``head``), so usage is never placed where it would expire early."""
        gap = bucket - acct.head
        if gap <= 0:
            return
        ring = acct.ring
        if gap >= self._size:
            for i in range(self._size):
                ring[i] = 0
            acct.used = 0
            for kind_ring in acct.kinds.values():
                for i in range(self._size):
                    kind_ring[i] = 0
        else:
            size = self._size
            for b in range(acct.head + 1, bucket + 1):
                slot = b % size
                acct.used -= ring[slot]
                ring[slot] = 0
                for kind_ring in acct.kinds.values():
                    kind_ring[slot] = 0
        acct.head = bucket

    def _lapse_reservations(self, acct: _Account, now: float) -> None:
        held = acct.reservations
        while held:
            rid, (tokens, lapses) = next(iter(held.items()))
            if lapses > now:
                break
            del held[rid]
            acct.reserved -= tokens

    def _snapshot(self, company_id: UUID, acct: _Account | None, limit: int) -> UsageSnapshot:
        window = self.window
        if acct is None:
            return UsageSnapshot(
                company_id, 0, limit, window.days, 0, None if limit > 0 else float("inf")
            )
        frees_at = None
        if acct.used >= limit:
            size = self._size
            oldest = acct.head - window.buckets
            slots = [acct.ring[(oldest + i) % size] for i in range(size)]
            frees_at = window.frees_at(acct.used, limit, acct.head, slots)
        return UsageSnapshot(company_id, acct.used, limit, window.days, acct.reserved, frees_at)

    def _add(
        self,
        company_id: UUID,
        tokens: int,
        now: float,
        limit: int = 0,
        crossed: list[float] | None = None,
        breakdown: Breakdown | None = None,
    ) -> _Account | None:
        """Charge ``tokens``; the alert thresholds it crossed are appended to ``crossed``."""
        acct = self._account(company_id, now, create=tokens > 0)
        if acct is None or tokens == 0:
            return acct
        if acct.used + tokens > INT64_MAX:
            raise UsageOverflow("recording would take the total beyond Int64")
        slot = acct.head % self._size
        acct.ring[slot] += tokens
        before = acct.used
        acct.used += tokens
        if breakdown:
            self._add_kinds(acct, slot, breakdown)
        if self._thresholds:
            acct.fired, mask = crossed_thresholds(
                self._thresholds, acct.fired, before, acct.used, limit
            )
            if mask and crossed is not None:
                crossed.extend(t for i, t in enumerate(self._thresholds) if mask & (1 << i))
        self._keep(company_id, acct, now)
        return acct

    def _add_kinds(self, acct: _Account, slot: int, breakdown: Breakdown) -> None:
        """The breakdown is shown, never judged: a kind that would pass Int64 stops there
        rather than refuse a record the budget accepted."""
        kinds = acct.kinds
        for kind, count in breakdown.items():
            if count:
                kind_ring = kinds.get(kind)
                if kind_ring is None:
                    kind_ring = kinds[kind] = array("q", bytes(8 * self._size))
                total = kind_ring[slot] + count
                kind_ring[slot] = total if total <= INT64_MAX else INT64_MAX

    def _announce(self, company_id: UUID, crossed: list[float], snap: UsageSnapshot | None) -> None:
        """Tell the sink outside the lock; a sink that fails never fails the charge."""
        sink = self._sink
        if sink is None or snap is None:
            return
        for threshold in crossed:
            try:
                sink(company_id, threshold, snap)
            except Exception:  # alerts never fail a guarded request
                _log.exception("alert sink failed")

    def _keep(self, company_id: UUID, acct: _Account, now: float) -> None:
        """Refresh the company's time to live, at most once a bucket (re-inserting into
        the cache on every record was a third of a record's cost; the cache TTL has one
        bucket of slack for it). Never shorten it: a clock that went back would otherwise
        drop a company whose newest usage is still live."""
        if now >= acct.refreshed_at + self._refresh_every:
            acct.refreshed_at = now
            self._accounts[company_id] = acct

    def _forget_lapsed_keys(self, now: float) -> None:
        emptied: list[float] = []
        for ttl, order in self._key_order.items():
            while order and order[0][0] <= now:
                _, k = order.popleft()
                entry = self._keys.get(k)
                if entry is not None and entry[3] <= now:
                    self._forget_key(k, entry)
            if not order:
                emptied.append(ttl)
        for ttl in emptied:  # so that callers' many ttls cannot pile up empty queues
            del self._key_order[ttl]

    def _forget_key(self, k: _Key, entry: _KeyEntry) -> None:
        del self._keys[k]
        if entry[4]:
            company_id, key = k
            held = self._company_keys[company_id]
            del held[key]
            if not held:
                del self._company_keys[company_id]

    def _admit_key(self, company_id: UUID, dedupe: Dedupe, now: float) -> None:
        """Raise unless a new key of this company may be stored; nothing is written."""
        if dedupe.bounded:
            held = self._company_keys.get(company_id)
            if held is not None and len(held) >= self._max_company_keys:
                oldest = next(iter(held.values()))
                raise IdempotencyKeysExhausted(
                    f"memory store: company {company_id} holds {len(held)} live idempotency "
                    "keys (store.max_idempotency_keys_per_company)",
                    bound=self._max_company_keys,
                    retry_after=max(0.0, oldest - now),
                )
        if len(self._keys) >= self._max_keys:
            raise StoreFull(
                "memory store: too many live idempotency keys (store.max_idempotency_keys)"
            )

    def _remember_key(self, k: _Key, entry: _KeyEntry, ttl: float) -> None:
        self._keys[k] = entry
        order = self._key_order.get(ttl)
        if order is None:
            order = self._key_order[ttl] = deque()
        order.append((entry[3], k))
        if entry[4]:
            held = self._company_keys.get(k[0])
            if held is None:
                held = self._company_keys[k[0]] = {}
            held[k[1]] = entry[3]

    # -- the protocol ----------------------------------------------------------------------

    async def record(
        self,
        company_id: UUID,
        tokens: int,
        limit: int,
        *,
        dedupe: Dedupe | None = None,
        breakdown: Breakdown | None = None,
    ) -> RecordResult:
        check_breakdown(breakdown)
        crossed: list[float] = []
        result = self._record(company_id, tokens, limit, dedupe, crossed, breakdown)
        if crossed:
            self._announce(company_id, crossed, result.snapshot)
        return result

    def _record(
        self,
        company_id: UUID,
        tokens: int,
        limit: int,
        dedupe: Dedupe | None,
        crossed: list[float],
        breakdown: Breakdown | None = None,
    ) -> RecordResult:
        with self._lock:
            now = self._clock()
            if dedupe is None:
                acct = self._add(company_id, tokens, now, limit, crossed, breakdown)
                return RecordResult(self._snapshot(company_id, acct, limit))
            self._forget_lapsed_keys(now)
            k = (company_id, dedupe.key)
            seen = self._keys.get(k)
            if seen is not None and seen[3] <= now:  # lapsed, its queue not yet reached
                self._forget_key(k, seen)
                seen = None
            if seen is not None:
                if seen[0] != dedupe.fingerprint:
                    raise IdempotencyConflict("idempotency key reused for a different request")
                acct = self._account(company_id, now, create=False)
                current = self._snapshot(company_id, acct, limit)
                return RecordResult(current.as_first_answer(seen[1], seen[2]), replayed=True)
            self._admit_key(company_id, dedupe, now)
            acct = self._add(company_id, tokens, now, limit, crossed, breakdown)
            snap = self._snapshot(company_id, acct, limit)
            entry = (dedupe.fingerprint, snap.tokens_used, limit, now + dedupe.ttl, dedupe.bounded)
            self._remember_key(k, entry, dedupe.ttl)
            return RecordResult(snap)

    async def read(self, company_id: UUID, limit: int) -> UsageSnapshot:
        with self._lock:
            acct = self._account(company_id, self._clock(), create=False)
            if acct is None:
                self._check_room()
            return self._snapshot(company_id, acct, limit)

    def _check_room(self) -> None:
        """A company the store has no room for is refused when it is first read (the
        guard's admission), not served and then found unrecordable."""
        accounts = self._accounts
        if len(accounts) >= accounts.maxsize:
            accounts.expire()
            if len(accounts) >= accounts.maxsize:
                accounts.popitem()  # raises StoreFull, naming store.max_companies

    async def reserve(self, company_id: UUID, tokens: int, limit: int) -> Reservation:
        with self._lock:
            now = self._clock()
            acct = self._account(company_id, now, create=True)
            assert acct is not None
            held = acct.used + acct.reserved
            granted = held < limit and held + tokens <= limit
            rid = secrets.token_hex(8)
            if granted:
                acct.reservations[rid] = (tokens, now + self._reservation_ttl)
                acct.reserved += tokens
                self._keep(company_id, acct, now)
            snap = self._snapshot(company_id, acct, limit)
            return Reservation(company_id, rid, tokens, granted, snap)

    async def settle(
        self,
        reservation: Reservation,
        actual: int,
        limit: int,
        *,
        breakdown: Breakdown | None = None,
    ) -> UsageSnapshot:
        await self.release(reservation, limit)
        dedupe = settle_dedupe(reservation, actual, 2 * self._reservation_ttl)
        result = await self.record(
            reservation.company_id, actual, limit, dedupe=dedupe, breakdown=breakdown
        )
        return result.snapshot

    async def release(self, reservation: Reservation, limit: int) -> UsageSnapshot:
        with self._lock:
            company_id = reservation.company_id
            acct = self._account(company_id, self._clock(), create=False)
            if acct is not None:
                held = acct.reservations.pop(reservation.id, None)
                if held is not None:
                    acct.reserved -= held[0]
            return self._snapshot(company_id, acct, limit)

    async def extend(self, reservation: Reservation, limit: int) -> bool:
        with self._lock:
            now = self._clock()
            acct = self._account(reservation.company_id, now, create=False)
            held = None if acct is None else acct.reservations.pop(reservation.id, None)
            if acct is None or held is None:
                return False
            # Re-inserted at the end: insertion order stays lapse order (one TTL from now).
            acct.reservations[reservation.id] = (held[0], now + self._reservation_ttl)
            self._keep(reservation.company_id, acct, now)
            return True

    @property
    def reservation_ttl(self) -> float:
        return self._reservation_ttl

    async def buckets(self, company_id: UUID) -> list[tuple[float, int]]:
        with self._lock:
            acct = self._account(company_id, self._clock(), create=False)
            if acct is None:
                return []
            width, size = self.window.bucket_seconds, self._size
            oldest = acct.head - self.window.buckets
            return [
                (float((oldest + i) * width), acct.ring[(oldest + i) % size])
                for i in range(size)
                if acct.ring[(oldest + i) % size]
            ]

    async def breakdown(self, company_id: UUID) -> dict[str, int]:
        with self._lock:
            acct = self._account(company_id, self._clock(), create=False)
            kinds = {} if acct is None else acct.kinds
            return {kind: sum(kinds[kind]) if kind in kinds else 0 for kind in BREAKDOWN_KINDS}

    async def remember_object(self, company_id: UUID, object_id: str, ttl: float) -> None:
        """First owner wins. The table is bounded (``store.max_objects``): at the bound the
        least recently used entry goes, which only makes its owner's later lookups answer
        ``None`` (denied); it can never hand the id to another company, as long as ids are
        remembered only from the upstream's answer to the creating company's own request
        (the upstream never issues one id twice)."""
        check_object_id(object_id)
        ttl = check_object_ttl(ttl)
        with self._lock:
            if self._objects.get(object_id) is None:
                self._objects[object_id] = (company_id, self._clock() + ttl)

    async def object_owner(self, object_id: str) -> UUID | None:
        check_object_id(object_id)
        with self._lock:
            entry = self._objects.get(object_id)
            return None if entry is None else entry[0]

    async def remember_objects(
        self, company_id: UUID, object_ids: Sequence[str], ttl: float
    ) -> None:
        """:meth:`remember_object` for each id under one lock acquisition, so the batch is
        never interleaved with another thread's claims; all ids are checked before any is
        written."""
        ids = check_object_ids(object_ids)
        ttl = check_object_ttl(ttl)
        if not ids:
            return
        objects = self._objects
        with self._lock:
            lapses = self._clock() + ttl
            for object_id in ids:
                if objects.get(object_id) is None:
                    objects[object_id] = (company_id, lapses)

    async def object_owners(self, object_ids: Sequence[str]) -> list[UUID | None]:
        ids = check_object_ids(object_ids)
        if not ids:
            return []
        objects = self._objects
        with self._lock:
            entries = [objects.get(object_id) for object_id in ids]
        return [None if entry is None else entry[0] for entry in entries]

    async def ping(self) -> None:
        return None

    # -- run-time limits and threshold alerts ---------------------------------------------

    async def limit_override(self, company_id: UUID) -> int | None:
        return self._overrides.get(company_id)

    def peek_limit_override(self, company_id: UUID) -> int | None:
        """:meth:`limit_override` without an await, for the request path (a dict read)."""
        return self._overrides.get(company_id)

    async def set_limit_override(self, company_id: UUID, limit: int | None) -> int | None:
        with self._lock:
            if limit is None:
                return self._overrides.pop(company_id, None)
            old = self._overrides.get(company_id)
            self._overrides[company_id] = limit
            return old

    async def limit_overrides(self) -> dict[UUID, int]:
        with self._lock:
            return dict(self._overrides)

    def watch_thresholds(self, thresholds: tuple[float, ...], sink: ThresholdSink) -> None:
        self._thresholds = check_thresholds(thresholds)
        self._sink = sink

    async def aclose(self) -> None:
        return None

    def stats(self) -> dict[str, Any]:
        return {
            "companies": len(self._accounts),
            "idempotency_keys": len(self._keys),
            "objects": len(self._objects),
        }
