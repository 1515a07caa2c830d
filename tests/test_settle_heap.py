"""What ``serve`` does to the garbage collector once start-up is done (the stream tail's
cause, ``docs/benchmarks.md``): start-up's objects frozen out of its walk, full collections
ten times rarer, young ones as they were."""

from __future__ import annotations

import gc

from budget_guard.app import FULL_COLLECTION_THRESHOLD, settle_heap


def test_start_up_is_frozen_and_full_collections_are_rarer() -> None:
    before = gc.get_threshold()
    try:
        settle_heap()
        assert gc.get_freeze_count() > 1_000
        young, middle, full = gc.get_threshold()
        assert (young, middle) == before[:2]
        assert full == FULL_COLLECTION_THRESHOLD > 10  # CPython's default is 10
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
