"""Fail-open's memory: usage that could not be recorded while the store was down.

Entries keep the dedupe key of their first attempt, so a replay after an ambiguous failure
(the store applied it but the reply was lost) is not counted twice while that key lives.
The journal is bounded; when it overflows it says so loudly (and counts what it dropped)
instead of growing until the process dies.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass
from uuid import UUID

from budget_guard.budget.ledger import Ledger
from budget_guard.stores import Dedupe, StoreError, StoreUnavailable
from budget_guard.stores.base import Breakdown

log = logging.getLogger("budget_guard.journal")


@dataclass(frozen=True, slots=True)
class PendingUsage:
    company_id: UUID
    tokens: int
    dedupe: Dedupe | None
    breakdown: Breakdown | None = None


class UsageJournal:
    def __init__(
        self, ledger: Ledger, *, max_entries: int = 100_000, retry_seconds: float = 0.5
    ) -> None:
        self._ledger = ledger
        self._entries: deque[PendingUsage] = deque()
        self._max = max_entries
        self._retry = retry_seconds
        self._task: asyncio.Task[None] | None = None
        self.dropped_tokens = 0
        self.dropped_entries = 0
        self.replayed_entries = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def pending_tokens(self) -> int:
        return sum(entry.tokens for entry in self._entries)

    def add(self, entry: PendingUsage) -> None:
        if len(self._entries) >= self._max:
            self.dropped_entries += 1
            self.dropped_tokens += entry.tokens
            log.error(
                "usage journal full (%d entries): %d tokens could not be kept for replay "
                "(%d entries and %d tokens dropped so far); the store has been down too long",
                self._max,
                entry.tokens,
                self.dropped_entries,
                self.dropped_tokens,
            )
            return
        self._entries.append(entry)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._replay_forever())

    async def replay(self) -> int:
        """Replay what it can now; stops at the first entry the store still refuses."""
        done = 0
        while self._entries:
            entry = self._entries[0]
            try:
                await self._ledger.record(
                    entry.company_id, entry.tokens, dedupe=entry.dedupe, breakdown=entry.breakdown
                )
            except StoreUnavailable:
                break
            except StoreError as exc:
                # Not an outage (e.g. the total would overflow Int64): retrying cannot help.
                log.error("journal entry could not be recorded and is dropped: %s", exc)
                self.dropped_entries += 1
                self.dropped_tokens += entry.tokens
            else:
                done += 1
            self._entries.popleft()
        if done:
            self.replayed_entries += done
            log.warning("usage journal replayed %d entries; %d left", done, len(self._entries))
        return done

    async def _replay_forever(self) -> None:
        delay = self._retry
        while self._entries:
            await asyncio.sleep(delay)
            # Back off while the store stays down; try again promptly once it answers.
            delay = self._retry if await self.replay() else min(delay * 2, 5.0)

    async def aclose(self) -> None:
        """Try one last replay; whatever is left is reported, not silently lost."""
        if self._task is not None:
            self._task.cancel()
        if self._entries:
            await self.replay()
        if self._entries:
            log.error(
                "shutting down with %d unrecorded usage entries (%d tokens) in the journal",
                len(self._entries),
                self.pending_tokens,
            )
