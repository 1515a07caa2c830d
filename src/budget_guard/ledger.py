"""The ledger: a usage store judged by a budget policy.

This is the API the endpoint and the middleware use. It is the "strategy" over the storage
(as in the ``limits`` package): the store keeps numbers, the policy says what they are
judged against.
"""

from __future__ import annotations

from uuid import UUID

from budget_guard.policy import BudgetPolicy
from budget_guard.snapshot import UsageSnapshot
from budget_guard.stores.base import Breakdown, Dedupe, RecordResult, Reservation, UsageStore
from budget_guard.weights import BudgetWeights
from budget_guard.window import Window


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
        limit = await self.policy.limit_for(company_id)
        if not breakdown:  # stores written before breakdowns existed take no such argument
            return await self.store.record(company_id, tokens, limit, dedupe=dedupe)
        return await self.store.record(
            company_id, tokens, limit, dedupe=dedupe, breakdown=breakdown
        )

    async def snapshot(self, company_id: UUID) -> UsageSnapshot:
        return await self.store.read(company_id, await self.policy.limit_for(company_id))

    async def reserve(self, company_id: UUID, tokens: int) -> Reservation:
        limit = await self.policy.limit_for(company_id)
        return await self.store.reserve(company_id, max(0, tokens), limit)

    async def settle(
        self, reservation: Reservation, actual: int, *, breakdown: Breakdown | None = None
    ) -> UsageSnapshot:
        limit = await self.policy.limit_for(reservation.company_id)
        if not breakdown:
            return await self.store.settle(reservation, max(0, actual), limit)
        return await self.store.settle(reservation, max(0, actual), limit, breakdown=breakdown)

    async def breakdown(self, company_id: UUID) -> dict[str, int]:
        """Raw tokens by kind in the window (see :data:`~budget_guard.stores.BREAKDOWN_KINDS`)."""
        return await self.store.breakdown(company_id)

    async def release(self, reservation: Reservation) -> UsageSnapshot:
        limit = await self.policy.limit_for(reservation.company_id)
        return await self.store.release(reservation, limit)

    async def extend(self, reservation: Reservation) -> bool:
        limit = await self.policy.limit_for(reservation.company_id)
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

    async def aclose(self) -> None:
        await self.store.aclose()
