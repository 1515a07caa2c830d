"""The ledger: a usage store judged by a budget policy.

This is the API the endpoint and the middleware use. It is the "strategy" over the storage
(as in the ``limits`` package): the store keeps numbers, the policy says what they are
judged against.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

from budget_guard.budget.overrides import MISS, OverrideReader
from budget_guard.budget.policy import BudgetPolicy, check_limit
from budget_guard.budget.snapshot import UsageSnapshot
from budget_guard.budget.weights import BudgetWeights
from budget_guard.budget.window import Window
from budget_guard.stores.base import (
    Breakdown,
    Dedupe,
    RecordResult,
    Reservation,
    ThresholdSink,
    ThresholdWatch,
    UsageStore,
)

log = logging.getLogger("budget_guard.limits")


class OverridesUnsupported(Exception):
    """The store has no run-time limit overrides (a host's own store, say)."""


@dataclass(frozen=True, slots=True)
class LimitInfo:
    """A company's limit and where it comes from, for the admin API and the usage views."""

    company_id: UUID
    token_limit: int
    """The limit in force."""
    override: int | None
    """The run-time override, when one is set."""
    source: str
    """``override``, ``config`` (``[budget.limits]``), ``provider`` or ``default``."""


class Ledger:
    def __init__(
        self,
        store: UsageStore,
        policy: BudgetPolicy | None = None,
        *,
        weights: BudgetWeights | None = None,
    ) -> None:
        self.store = store
        self.policy = policy or BudgetPolicy(store.window)
        self.weights = weights or BudgetWeights()
        """How the guard turns a metered response into budget tokens (raw by default). The
        usage endpoint records the tokens it is given, unweighted."""
        if self.policy.window != store.window:
            raise ValueError("the policy and the store must use the same window")
        self.overrides = OverrideReader(store)
        self.thresholds: tuple[float, ...] = ()

    async def limit_for(self, company_id: UUID) -> int:
        """Precedence: the run-time override, then ``[budget.limits]``, then the host's limit
        provider, then the default (the policy does the last three)."""
        override = self.overrides.known(company_id)
        if override == MISS:
            override = await self.overrides.get(company_id)
        if override is not None:
            return override
        return await self.policy.limit_for(company_id)

    async def limit_info(self, company_id: UUID) -> LimitInfo:
        override = await self.overrides.get(company_id)
        if override is not None:
            return LimitInfo(company_id, override, override, "override")
        limit = await self.policy.limit_for(company_id)
        return LimitInfo(company_id, limit, None, self.policy.source_of(company_id))

    async def set_limit(self, company_id: UUID, limit: int | None, *, by: str) -> int | None:
        """Set (``None``: clear) the company's run-time override; returns the previous one.
        Logged once with who made the change (``by``: a non-secret label such as an API
        key's name), the old and the new limit."""
        if not self.overrides.supported:
            raise OverridesUnsupported("this usage store keeps no run-time limits")
        if limit is not None:
            check_limit(limit, "TokenLimit")
        old: int | None = await self.store.set_limit_override(company_id, limit)  # type: ignore[attr-defined]
        self.overrides.forget(company_id)
        log.info(
            "token limit override %s",
            "cleared" if limit is None else "set",
            extra={
                "company_id": str(company_id),
                "changed_by": by,
                "old_limit": old,
                "new_limit": limit,
            },
        )
        return old

    async def limit_overrides(self) -> dict[UUID, int]:
        if not self.overrides.supported:
            return {}
        return await self.store.limit_overrides()  # type: ignore[attr-defined, no-any-return]

    def watch_thresholds(self, thresholds: tuple[float, ...], sink: ThresholdSink) -> None:
        """Have the store decide alert threshold crossings with each charge (atomically, so
        one crossing is one event across every worker and host) and tell ``sink``."""
        inner = getattr(self.store, "inner", self.store)
        if not isinstance(inner, ThresholdWatch):
            raise TypeError("this usage store cannot watch alert thresholds")
        inner.watch_thresholds(thresholds, sink)
        self.thresholds = tuple(sorted(thresholds))

    @property
    def window(self) -> Window:
        return self.store.window

    async def record(
        self,
        company_id: UUID,
        tokens: int,
        *,
        dedupe: Dedupe | None = None,
        breakdown: Breakdown | None = None,
    ) -> RecordResult:
        if tokens < 0:
            raise ValueError("tokens must not be negative")
        limit = await self.limit_for(company_id)
        if not breakdown:  # stores written before breakdowns existed take no such argument
            return await self.store.record(company_id, tokens, limit, dedupe=dedupe)
        return await self.store.record(
            company_id, tokens, limit, dedupe=dedupe, breakdown=breakdown
        )

    async def snapshot(self, company_id: UUID) -> UsageSnapshot:
        return await self.store.read(company_id, await self.limit_for(company_id))

    async def reserve(self, company_id: UUID, tokens: int) -> Reservation:
        limit = await self.limit_for(company_id)
        return await self.store.reserve(company_id, max(0, tokens), limit)

    async def settle(
        self, reservation: Reservation, actual: int, *, breakdown: Breakdown | None = None
    ) -> UsageSnapshot:
        limit = await self.limit_for(reservation.company_id)
        if not breakdown:
            return await self.store.settle(reservation, max(0, actual), limit)
        return await self.store.settle(reservation, max(0, actual), limit, breakdown=breakdown)

    async def breakdown(self, company_id: UUID) -> dict[str, int]:
        """Raw tokens by kind in the window (see :data:`~budget_guard.stores.BREAKDOWN_KINDS`)."""
        return await self.store.breakdown(company_id)

    async def release(self, reservation: Reservation) -> UsageSnapshot:
        limit = await self.limit_for(reservation.company_id)
        return await self.store.release(reservation, limit)

    async def extend(self, reservation: Reservation) -> bool:
        limit = await self.limit_for(reservation.company_id)
        return await self.store.extend(reservation, limit)

    async def buckets(self, company_id: UUID) -> list[tuple[float, int]]:
        return await self.store.buckets(company_id)

    async def remember_object(self, company_id: UUID, object_id: str, ttl: float) -> None:
        """Record that ``company_id`` created the upstream object ``object_id`` (first owner
        wins). Ownership is not budgeted, so no limit is looked up."""
        await self.store.remember_object(company_id, object_id, ttl)

    async def object_owner(self, object_id: str) -> UUID | None:
        """The company that created ``object_id``, or ``None``: deny on ``None``."""
        return await self.store.object_owner(object_id)

    async def remember_objects(
        self, company_id: UUID, object_ids: Sequence[str], ttl: float
    ) -> None:
        """:meth:`remember_object` for every object one response created, in one store round
        trip. Ownership is not budgeted, so no limit is looked up."""
        await self.store.remember_objects(company_id, object_ids, ttl)

    async def object_owners(self, object_ids: Sequence[str]) -> list[UUID | None]:
        """The owner (or ``None``: deny) of each object a request names, in the given order,
        in one store round trip."""
        return await self.store.object_owners(object_ids)

    async def aclose(self) -> None:
        await self.store.aclose()
