"""The Redis usage store: one budget shared by many workers and hosts (Redis Cluster too).

Every operation is one ``EVALSHA`` of ``usage.lua``: the script expires old buckets, applies
the change and returns the snapshot atomically, so no read-modify-write ever happens in
Python. All keys of a company carry the company as a hash tag (``{<guid>}``), so they live in
one cluster slot and the script runs unchanged on Redis Cluster.

Caller-chosen dedupe keys are also listed in a per-company sorted set (same slot), so that
the script can refuse a company's new key past ``max_idempotency_keys_per_company`` without
any other company noticing. Object ownership (``remember_object``) is one plain key per
object, hash-tagged by the object id: single-key commands, no script; the batch forms send
those commands in one non-transactional pipeline.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from importlib.resources import files
from typing import Any, TypeVar
from uuid import UUID

import redis.asyncio as aioredis
from cachetools import LRUCache
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError, ResponseError

from budget_guard.budget.clock import Clock, system_clock
from budget_guard.budget.snapshot import UsageSnapshot
from budget_guard.budget.window import Window
from budget_guard.failure import describe
from budget_guard.stores.base import (
    BREAKDOWN_KINDS,
    DEFAULT_MAX_IDEMPOTENCY_KEYS_PER_COMPANY,
    Breakdown,
    Dedupe,
    IdempotencyConflict,
    IdempotencyKeysExhausted,
    RecordResult,
    Reservation,
    StoreError,
    StoreUnavailable,
    ThresholdSink,
    UsageOverflow,
    check_breakdown,
    check_object_id,
    check_object_ids,
    check_object_ttl,
    check_thresholds,
    settle_dedupe,
)
from budget_guard.stores.resp import LeanScript
from budget_guard.stores.restarts import RestartWatch

_log = logging.getLogger("budget_guard.stores.redis")
_SCRIPT = files("budget_guard.stores").joinpath("usage.lua").read_text(encoding="utf-8")

try:
    from redis.maint_notifications import MaintNotificationsConfig
except ImportError:  # redis-py before maintenance notifications: nothing to turn off
    _POOL_CHECKS: dict[str, Any] = {}
else:
    # With maintenance notifications on (redis-py's default "auto") the pool stops checking a
    # pooled connection before lending it, so once Redis restarted (or closed an idle
    # connection) the first command on every dead connection failed: a needless 503.
    _POOL_CHECKS = {"maint_notifications_config": MaintNotificationsConfig(enabled=False)}

RedisClient = aioredis.Redis | RedisCluster
T = TypeVar("T")


_KIND_LETTERS = {
    "input": "i",
    "cached_input": "c",
    "cache_write": "w",
    "cache_read": "r",
    "output": "o",
    "reasoning": "x",
}
"""How ``usage.lua`` names each breakdown kind in its per-bucket fields (short: one hash
field per kind per bucket)."""


def _kinds(breakdown: Breakdown) -> str:
    return " ".join(f"{_KIND_LETTERS[kind]} {count}" for kind, count in breakdown.items() if count)


class RedisStore:
    remote = True
    """A reply can be lost after the script ran: callers add retry keys (see Dedupe)."""

    def __init__(
        self,
        client: RedisClient,
        window: Window | None = None,
        *,
        prefix: str = "budget-guard:",
        clock: Clock = system_clock,
        reservation_ttl: float = 300.0,
        restart_check_seconds: float = 5.0,
        max_in_flight: int | None = None,
        in_flight_wait: float = 2.0,
        max_idempotency_keys_per_company: int = DEFAULT_MAX_IDEMPOTENCY_KEYS_PER_COMPANY,
        script_transport: LeanScript | None = None,
    ) -> None:
        """``restart_check_seconds``: how often, while in use, to check in the background
        that Redis has not come back empty (0: only in :meth:`ping`); see ``restarts.py``.

        ``max_in_flight``: at most this many operations at once; more wait their turn (at
        most ``in_flight_wait`` seconds, then :class:`StoreUnavailable`). Needed for Redis
        Cluster, whose client has no waiting pool: past its per-node ``max_connections`` it
        raises, which would turn a burst into an outage.

        ``max_idempotency_keys_per_company``: live caller-chosen dedupe keys (``Dedupe``
        with ``bounded``) one company may hold; a new one past it is refused with
        :class:`IdempotencyKeysExhausted` for that company alone.

        ``script_transport``: runs the usage script instead of ``client`` (see ``resp.py``:
        the same ``EVALSHA`` at a third to a seventh of redis-py's CPU); ``client`` serves
        the rest."""
        self.window = window or Window()
        self._client = client
        self._prefix = prefix
        self._clock = clock
        self._reservation_ttl_ms = int(reservation_ttl * 1000)
        self._bucket_ms = self.window.bucket_seconds * 1000
        self._n = self.window.buckets
        if max_idempotency_keys_per_company < 1:
            raise ValueError("max_idempotency_keys_per_company must be at least 1")
        self._max_company_keys = max_idempotency_keys_per_company
        self._lean = script_transport
        self._script: Callable[..., Awaitable[Any]] = script_transport or client.register_script(
            _SCRIPT
        )
        self._restarts = RestartWatch(client, f"{prefix}marker", interval=restart_check_seconds)
        self._key_cache: LRUCache[UUID, tuple[str, str, str, str, str]] = LRUCache(maxsize=65_536)
        self._gate = asyncio.Semaphore(max_in_flight) if max_in_flight else None
        self._gate_wait = in_flight_wait
        # A cluster client learns its topology on first use; a burst of first calls racing
        # through that lost connections under each other and, with the client's retries, ran
        # scripts twice (measured: 201 to 210 tokens for 200 records). So the store learns
        # it once, before its first call.
        self._topology_pending = isinstance(client, RedisCluster)
        self._topology_lock = asyncio.Lock()
        self._overrides_key = f"{prefix}limits"
        self._thresholds: tuple[float, ...] = ()
        self._thresholds_word = ""
        self._sink: ThresholdSink | None = None

    @classmethod
    def from_url(
        cls,
        url: str,
        window: Window | None = None,
        *,
        cluster: bool = False,
        socket_timeout: float = 2.0,
        connect_timeout: float = 1.0,
        max_connections: int = 100,
        lean_script: bool = True,
        **options: Any,
    ) -> RedisStore:
        """Connect from ``redis://``, ``rediss://`` or ``unix://`` URLs.

        Timeouts are short on purpose: a store that does not answer must turn into a quick
        503 or a fail-open journal entry, not a request that hangs.

        A call that finds all ``max_connections`` busy waits for one (at most
        ``socket_timeout``) instead of failing: redis-py's default pool raises at once, so a
        burst of requests became "store unavailable", and fail-open then admitted them
        unchecked, past the budget and past strict mode's reservations.

        ``lean_script``: the usage script goes over :class:`LeanScript` (standalone Redis
        over plain TCP or a unix socket; a cluster or ``rediss://`` keeps redis-py).
        """
        kwargs: dict[str, Any] = {
            "socket_timeout": socket_timeout,
            "socket_connect_timeout": connect_timeout,
            "decode_responses": True,
        }
        client: RedisClient
        if cluster:
            # No client-side retries: the cluster client re-sends a command after a lost
            # connection, and a script that had already run would then count twice. A failed
            # call surfaces as StoreUnavailable instead, and its caller's replay is deduped.
            client = RedisCluster.from_url(
                url, max_connections=max_connections, retry=Retry(NoBackoff(), 0), **kwargs
            )
            # The cluster client raises instead of waiting once a node's connections are all
            # busy, so the store queues operations itself, leaving two connections per node
            # for the readiness ping and the restart check.
            options.setdefault("max_in_flight", max(1, max_connections - 2))
            options.setdefault("in_flight_wait", socket_timeout)
        else:
            pool = aioredis.BlockingConnectionPool.from_url(
                url,
                max_connections=max_connections,
                timeout=socket_timeout,
                health_check_interval=30,
                **_POOL_CHECKS,
                **kwargs,
            )
            client = aioredis.Redis.from_pool(pool)
            if lean_script and not url.startswith("rediss:"):
                options.setdefault(
                    "script_transport",
                    LeanScript(
                        url,
                        _SCRIPT,
                        connect_timeout=connect_timeout,
                        socket_timeout=socket_timeout,
                    ),
                )
        return cls(client, window, **options)

    @property
    def client(self) -> RedisClient:
        return self._client

    def _keys(self, company_id: UUID) -> tuple[str, str, str, str, str]:
        """The company's keys (usage, reservation times, reservation amounts, the key used
        when a call has no dedupe, its live bounded dedupe keys); cached, since building
        them is a measurable part of a record's client-side cost."""
        keys = self._key_cache.get(company_id)
        if keys is None:
            base = f"{self._prefix}{{{company_id}}}"
            keys = (f"{base}:u", f"{base}:rt", f"{base}:ra", f"{base}:k:-", f"{base}:kz")
            self._key_cache[company_id] = keys
        return keys

    def _dedupe_key(self, company_id: UUID, key: str) -> str:
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        return f"{self._prefix}{{{company_id}}}:k:{digest}"

    async def _run(
        self,
        op: str,
        company_id: UUID,
        limit: int,
        tokens: int = 0,
        *,
        reservation_id: str = "",
        dedupe: Dedupe | None = None,
        breakdown: Breakdown | None = None,
    ) -> list[str]:
        usage, held_at, held, no_dedupe, live_keys = self._keys(company_id)
        dedupe_key = self._dedupe_key(company_id, dedupe.key) if dedupe else no_dedupe
        dedupe_ms = max(1, int(dedupe.ttl * 1000)) if dedupe else 0
        bound = self._max_company_keys if dedupe and dedupe.bounded else 0
        numbers = (
            f"{op} {int(self._clock() * 1000)} {self._bucket_ms} {self._n} {limit} {tokens} "
            f"{self._reservation_ttl_ms} {dedupe_ms} {bound}{self._thresholds_word}"
        )
        fingerprint = dedupe.fingerprint if dedupe else ""
        if breakdown:
            args: tuple[str, ...] = (numbers, reservation_id, fingerprint, _kinds(breakdown))
        else:
            args = (numbers, reservation_id, fingerprint)
        keys = (usage, held_at, held, dedupe_key, live_keys)
        try:
            if self._topology_pending:
                await self._learn_topology()
            gate = self._gate
            if gate is None:
                reply = await self._script(keys=keys, args=args)
            else:
                reply = await self._gated(gate, lambda: self._script(keys=keys, args=args))
        except StoreError:
            raise  # already said (every connection stayed busy)
        except Exception as exc:
            raise self._failure(exc, "the usage script") from None
        self._restarts.store_answered()
        if isinstance(reply, str):  # the common case: "status used reserved frees"
            words = reply.split(" ")
            if len(words) > 4:  # "... crossed_mask": this charge crossed alert thresholds
                self._announce(company_id, limit, int(words.pop()), words)
            return [*words, ""]
        return reply  # type: ignore[no-any-return]

    def _announce(self, company_id: UUID, limit: int, mask: int, words: list[str]) -> None:
        """Tell the sink of each threshold the script said this charge crossed; a sink that
        fails never fails the charge (the script has already run)."""
        sink = self._sink
        if sink is None:
            return
        snap = self._snapshot(company_id, limit, [*words, ""])
        for i, threshold in enumerate(self._thresholds):
            if mask & (1 << i):
                try:
                    sink(company_id, threshold, snap)
                except Exception:  # alerts never fail a guarded request
                    _log.exception("alert sink failed")

    def _failure(self, exc: Exception, what: str) -> StoreUnavailable:
        """What a failed call is reported as: always :class:`StoreUnavailable`, so that
        fail-open journals and fail-closed answers 503, never a 500."""
        if isinstance(exc, ResponseError):
            return StoreUnavailable(f"redis refused {what}: {exc}")
        self._restarts.store_failed()
        if isinstance(exc, RedisError | OSError):
            return StoreUnavailable(f"redis unavailable: {type(exc).__name__}")
        # The client library's own failures (redis-py's cluster client has raised
        # AttributeError on a connection dropped under a burst) are the store failing too.
        return StoreUnavailable(f"redis client failed: {describe(exc)}")

    async def _command(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """One plain command (not the usage script) under the same topology learning,
        in-flight gate and failure mapping as the script."""
        try:
            if self._topology_pending:
                await self._learn_topology()
            gate = self._gate
            reply = await (call() if gate is None else self._gated(gate, call))
        except StoreError:
            raise
        except Exception as exc:
            raise self._failure(exc, what) from None
        self._restarts.store_answered()
        return reply

    async def _learn_topology(self) -> None:
        async with self._topology_lock:
            if self._topology_pending:
                await self._client.initialize()
                self._topology_pending = False

    async def _gated(self, gate: asyncio.Semaphore, call: Callable[[], Awaitable[T]]) -> T:
        if gate.locked():
            try:
                await asyncio.wait_for(gate.acquire(), self._gate_wait)
            except TimeoutError:
                raise StoreUnavailable("redis: every connection stayed busy") from None
        else:
            await gate.acquire()  # a free slot: returns without suspending
        try:
            return await call()
        finally:
            gate.release()

    def _snapshot(self, company_id: UUID, limit: int, reply: list[str]) -> UsageSnapshot:
        _, used, reserved, frees, _ = reply
        frees_at: float | None = None
        if frees == "never":
            frees_at = float("inf")
        elif frees != "-":
            frees_at = int(frees) / 1000
        return UsageSnapshot(
            company_id, int(used), limit, self.window.days, int(reserved), frees_at
        )

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
        reply = await self._run(
            "record", company_id, limit, tokens, dedupe=dedupe, breakdown=breakdown
        )
        return self._result(company_id, limit, reply, dedupe)

    def _result(
        self, company_id: UUID, limit: int, reply: list[str], dedupe: Dedupe | None
    ) -> RecordResult:
        status = reply[0]
        if status == "overflow":
            raise UsageOverflow("recording would take the total beyond Int64")
        if status == "keys":  # "keys <live keys> <oldest lapses ms>"
            raise IdempotencyKeysExhausted(
                f"redis store: company {company_id} holds {reply[1]} live idempotency keys "
                "(store.max_idempotency_keys_per_company)",
                bound=self._max_company_keys,
                retry_after=max(0.0, int(reply[2]) / 1000 - self._clock()),
            )
        snap = self._snapshot(company_id, limit, reply)
        if status != "replay":
            return RecordResult(snap)
        # "<lapses ms>|<fingerprint>|<used>|<limit>"; the fingerprint may hold "|" itself.
        fingerprint, used, first_limit = reply[4].split("|", 1)[1].rsplit("|", 2)
        if dedupe is not None and fingerprint != dedupe.fingerprint:
            raise IdempotencyConflict("idempotency key reused for a different request")
        return RecordResult(snap.as_first_answer(int(used), int(first_limit)), replayed=True)

    async def read(self, company_id: UUID, limit: int) -> UsageSnapshot:
        return self._snapshot(company_id, limit, await self._run("read", company_id, limit))

    async def reserve(self, company_id: UUID, tokens: int, limit: int) -> Reservation:
        rid = secrets.token_hex(8)
        reply = await self._run("reserve", company_id, limit, tokens, reservation_id=rid)
        snap = self._snapshot(company_id, limit, reply)
        return Reservation(company_id, rid, tokens, reply[0] == "ok", snap)

    async def settle(
        self,
        reservation: Reservation,
        actual: int,
        limit: int,
        *,
        breakdown: Breakdown | None = None,
    ) -> UsageSnapshot:
        check_breakdown(breakdown)
        dedupe = settle_dedupe(reservation, actual, 2 * self._reservation_ttl_ms / 1000)
        reply = await self._run(
            "settle",
            reservation.company_id,
            limit,
            actual,
            reservation_id=reservation.id,
            dedupe=dedupe,
            breakdown=breakdown,
        )
        return self._result(reservation.company_id, limit, reply, dedupe).snapshot

    async def release(self, reservation: Reservation, limit: int) -> UsageSnapshot:
        reply = await self._run(
            "release", reservation.company_id, limit, reservation_id=reservation.id
        )
        return self._snapshot(reservation.company_id, limit, reply)

    async def extend(self, reservation: Reservation, limit: int) -> bool:
        reply = await self._run(
            "extend", reservation.company_id, limit, reservation_id=reservation.id
        )
        return reply[0] == "ok"

    @property
    def reservation_ttl(self) -> float:
        return self._reservation_ttl_ms / 1000

    async def buckets(self, company_id: UUID) -> list[tuple[float, int]]:
        # Read-only and off the hot path: one HGETALL, decoded against the newest bucket.
        fields = await self._usage_fields(company_id)
        out = []
        for b, slot in self._live_slots(fields):
            v = int(fields.get(slot, "0"))
            if v:
                out.append((float(b * self.window.bucket_seconds), v))
        return out

    async def breakdown(self, company_id: UUID) -> dict[str, int]:
        fields = await self._usage_fields(company_id)
        totals = dict.fromkeys(BREAKDOWN_KINDS, 0)
        for _, slot in self._live_slots(fields):
            for kind, letter in _KIND_LETTERS.items():
                totals[kind] += int(fields.get(f"{slot}:{letter}", "0"))
        return totals

    async def _usage_fields(self, company_id: UUID) -> dict[str, str]:
        try:
            fields: dict[str, str] = await self._client.hgetall(self._keys(company_id)[0])
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis unavailable: {type(exc).__name__}") from exc
        return fields

    def _live_slots(self, fields: dict[str, str]) -> list[tuple[int, str]]:
        """``(bucket, ring slot field)`` of each bucket still in the window, oldest first;
        the script drops aged-out buckets only when it next runs, so the clock decides."""
        if "h" not in fields:
            return []
        n = self._n
        head = int(fields["h"])
        now_bucket = max(head, self.window.bucket_of(self._clock()))
        return [(b, str(b % (n + 1))) for b in range(now_bucket - n, head + 1)]

    @property
    def restarts_detected(self) -> int:
        """How many times this process found that Redis had come back empty (each one is
        logged once at ERROR: the usage recorded before it is lost)."""
        return self._restarts.detected

    def _object_key(self, object_id: str) -> str:
        # Hash-tagged by the object id: every object is its own slot, one key, one command.
        return f"{self._prefix}obj:{{{check_object_id(object_id)}}}"

    async def remember_object(self, company_id: UUID, object_id: str, ttl: float) -> None:
        """``SET NX PX``: first owner wins, atomically, even between hosts."""
        key = self._object_key(object_id)
        ttl_ms = max(1, int(check_object_ttl(ttl) * 1000))
        client = self._client
        await self._command(
            "remember_object", lambda: client.set(key, company_id.hex, nx=True, px=ttl_ms)
        )

    async def object_owner(self, object_id: str) -> UUID | None:
        key = self._object_key(object_id)
        client = self._client
        value = await self._command("object_owner", lambda: client.get(key))
        return _as_owner(value)

    async def remember_objects(
        self, company_id: UUID, object_ids: Sequence[str], ttl: float
    ) -> None:
        """One ``SET NX PX`` per distinct id, sent as one non-transactional pipeline: one
        round trip (on a cluster, one per node holding any of the keys, sent together). Not
        MULTI nor MSETNX: each object is its own slot, and each ``SET NX`` is atomic on its
        own, which is all that first owner wins needs. Every id and the ttl are checked
        before the pipeline is built, so a bad one sends nothing."""
        keys = list(dict.fromkeys(self._object_key(i) for i in check_object_ids(object_ids)))
        ttl_ms = max(1, int(check_object_ttl(ttl) * 1000))
        if not keys:
            return
        client, owner = self._client, company_id.hex

        async def claim() -> list[Any]:
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.set(key, owner, nx=True, px=ttl_ms)
            return await pipe.execute()  # type: ignore[no-any-return]

        await self._command("remember_objects", claim)

    async def object_owners(self, object_ids: Sequence[str]) -> list[UUID | None]:
        """One ``GET`` per distinct id, sent as one non-transactional pipeline (not MGET: the
        keys are in different slots); answered in the order asked."""
        ids = check_object_ids(object_ids)
        key_of = {object_id: self._object_key(object_id) for object_id in ids}  # distinct ids
        if not key_of:
            return []
        client = self._client

        async def read() -> list[Any]:
            pipe = client.pipeline(transaction=False)
            for key in key_of.values():
                pipe.get(key)
            return await pipe.execute()  # type: ignore[no-any-return]

        values = await self._command("object_owners", read)
        owner_of = dict(zip(key_of, map(_as_owner, values), strict=True))
        return [owner_of[object_id] for object_id in ids]

    # -- run-time limits and threshold alerts ---------------------------------------------
    # Overrides are one hash for all companies ("<prefix>limits": company hex -> limit): one
    # key, so plain single-key commands work on Redis Cluster too, and listing is one HGETALL.

    async def limit_override(self, company_id: UUID) -> int | None:
        client, key = self._client, self._overrides_key
        value = await self._command("limit_override", lambda: client.hget(key, company_id.hex))
        return _as_limit(value)

    async def set_limit_override(self, company_id: UUID, limit: int | None) -> int | None:
        """``HGET`` and ``HSET``/``HDEL`` in one MULTI, so the old value returned is the one
        this change replaced even when two admins race."""
        client, key, field = self._client, self._overrides_key, company_id.hex

        async def swap() -> list[Any]:
            pipe = client.pipeline(transaction=True)
            pipe.hget(key, field)
            if limit is None:
                pipe.hdel(key, field)
            else:
                pipe.hset(key, field, str(limit))
            return await pipe.execute()  # type: ignore[no-any-return]

        replies = await self._command("set_limit_override", swap)
        return _as_limit(replies[0])

    async def limit_overrides(self) -> dict[UUID, int]:
        client, key = self._client, self._overrides_key
        values: dict[str, str] = await self._command("limit_overrides", lambda: client.hgetall(key))
        out: dict[UUID, int] = {}
        for field, value in values.items():
            limit = _as_limit(value)
            try:
                company = UUID(hex=field)
            except ValueError:  # not written by us: ignored, like an unknown object owner
                continue
            if limit is not None:
                out[company] = limit
        return out

    def watch_thresholds(self, thresholds: tuple[float, ...], sink: ThresholdSink) -> None:
        self._thresholds = check_thresholds(thresholds)
        self._thresholds_word = (
            " " + ",".join(repr(t) for t in self._thresholds) if self._thresholds else ""
        )
        self._sink = sink

    async def companies(self) -> list[UUID]:
        """Every company with a usage hash under this prefix, for ``budget-guard usage``.

        A SCAN (on a cluster, of every primary): off the hot path, an operator's command."""
        pattern = _glob_escape(self._prefix) + "{*}:u"
        found: set[UUID] = set()
        try:
            async for key in self._client.scan_iter(match=pattern, count=1000):
                text = key.decode() if isinstance(key, bytes) else str(key)
                inner = text[len(self._prefix) :].partition("}")[0].lstrip("{")
                try:
                    found.add(UUID(inner))
                except ValueError:
                    continue
        except (RedisError, OSError) as exc:
            raise StoreUnavailable(f"redis unavailable: {type(exc).__name__}") from None
        return sorted(found, key=str)

    async def ping(self) -> None:
        """Also checks (and on first use writes) the restart marker."""
        try:
            await self._client.ping()
            await self._restarts.check()
        except (RedisError, OSError) as exc:
            self._restarts.store_failed()
            raise StoreUnavailable(f"redis unavailable: {type(exc).__name__}") from None

    async def aclose(self) -> None:
        await self._restarts.aclose()
        if self._lean is not None:
            await self._lean.aclose()
        await self._client.aclose()


def _as_owner(value: Any) -> UUID | None:
    """A stored object owner, or ``None`` for none."""
    if not value:
        return None
    try:
        return UUID(hex=value)
    except ValueError:  # not written by us: an unknown owner is no owner (denied)
        return None


def _as_limit(value: object) -> int | None:
    """A stored override, or ``None`` for none (or for a value this code did not write)."""
    if not isinstance(value, str) or not value.isdigit():
        return None
    return int(value)


def _glob_escape(text: str) -> str:
    """``text`` as a literal inside a Redis MATCH pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
