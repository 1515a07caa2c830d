"""How the guard asks the store who owns the objects a request names: in batches, stopping at
the first batch with an object that is not the caller's."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

import httpx

from budget_guard.guard.middleware import OWNER_LOOKUP_BATCH
from budget_guard.stores import MemoryStore
from tests.guard.conftest import COMPANY_A, KEY_A, guarded_proxy


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.lookups: list[int] = []

    async def object_owners(self, object_ids: Sequence[str]) -> list[UUID | None]:
        self.lookups.append(len(object_ids))
        return await super().object_owners(object_ids)


def _items(ids: list[str]) -> dict[str, object]:
    return {
        "model": "o4-mini",
        "input": [{"type": "reasoning", "id": item, "summary": []} for item in ids],
    }


async def test_made_up_ids_cost_one_batch_of_lookups(demo_upstream_url: str) -> None:
    """Thousands of ids nobody owns are refused (and never charged) after one store call."""
    store = CountingStore()
    with guarded_proxy(demo_upstream_url, store=store) as g:
        async with httpx.AsyncClient(base_url=g.url) as http:
            made_up = _items([f"rs_{n}" for n in range(3000)])
            answer = await http.post(
                "/v1/responses", json=made_up, headers={"Authorization": f"Bearer {KEY_A}"}
            )
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "object_not_found"
    assert store.lookups == [OWNER_LOOKUP_BATCH]


async def test_a_long_conversation_of_own_items_is_looked_up_in_batches(
    demo_upstream_url: str,
) -> None:
    store = CountingStore()
    own = [f"rs_{n}" for n in range(200)]
    await store.remember_objects(COMPANY_A, own, 3600)
    with guarded_proxy(demo_upstream_url, store=store) as g:
        async with httpx.AsyncClient(base_url=g.url) as http:
            answer = await http.post(
                "/v1/responses",
                json=_items([*own, "rs_not_mine"]),
                headers={"Authorization": f"Bearer {KEY_A}"},
            )
    assert answer.status_code == 404
    assert "rs_not_mine" in answer.json()["error"]["message"]
    batches, last = divmod(len(own) + 1, OWNER_LOOKUP_BATCH)
    assert store.lookups == [OWNER_LOOKUP_BATCH] * batches + [last]
