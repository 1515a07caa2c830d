"""Store-outage lines: the first at once, then at most one of a kind per interval, each
saying how many it stands for, so an outage under load does not flood the log."""

from __future__ import annotations

import asyncio
import logging

import pytest

from budget_guard.guard.outage_log import OutageLog


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_one_line_per_kind_per_interval_and_the_count_it_stands_for(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    outage = OutageLog(logging.getLogger("test.outage"), every=10.0, clock=clock)
    with caplog.at_level(logging.WARNING, "test.outage"):
        for _ in range(500):
            outage.log(logging.WARNING, "journal", "%d tokens journaled: %s", 7, "down")
            clock.now += 0.01  # 500 events over 5 s
        outage.log(logging.ERROR, "admit", "refusing: %s", "down")  # another kind: its own line
        clock.now += 10.0
        outage.log(logging.WARNING, "journal", "%d tokens journaled: %s", 9, "down")
    lines = [record.getMessage() for record in caplog.records]
    assert lines == [
        "7 tokens journaled: down",
        "refusing: down",
        "9 tokens journaled: down (499 more like it in the last 15 s, not logged one by one)",
    ]
    assert [record.levelno for record in caplog.records] == [
        logging.WARNING,
        logging.ERROR,
        logging.WARNING,
    ]


async def test_what_was_held_back_is_told_when_the_interval_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An outage that ends inside an interval still has its count written: nothing waits for
    a next event that may never come."""
    outage = OutageLog(logging.getLogger("test.outage"), every=0.05)
    with caplog.at_level(logging.WARNING, "test.outage"):
        for tokens in range(1, 21):
            outage.log(logging.WARNING, "journal", "%d tokens journaled: %s", tokens, "down")
        assert len(caplog.records) == 1
        await asyncio.sleep(0.15)
    lines = [record.getMessage() for record in caplog.records]
    assert lines[0] == "1 tokens journaled: down"
    assert lines[1].startswith("20 tokens journaled: down (18 more like it in the last 0 s")
    assert len(lines) == 2  # and nothing more once nothing is held


async def test_a_long_outage_writes_one_line_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outage = OutageLog(logging.getLogger("test.outage"), every=0.1)
    with caplog.at_level(logging.WARNING, "test.outage"):
        for _ in range(50):  # 0.5 s of events, one every 10 ms
            outage.log(logging.WARNING, "admit", "serving: %s", "down")
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
    held = sum(
        1 + int(record.getMessage().split("(")[1].split()[0]) if "(" in record.getMessage() else 1
        for record in caplog.records
    )
    assert held == 50  # every event told, once
    assert 4 <= len(caplog.records) <= 8  # one line about every 0.1 s, not 50


def test_flush_writes_what_is_held(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    outage = OutageLog(logging.getLogger("test.outage"), every=10.0, clock=clock)
    with caplog.at_level(logging.WARNING, "test.outage"):
        for _ in range(3):
            outage.log(logging.ERROR, "full", "%s refused", "company")
            clock.now += 1.0
        outage.flush()
        outage.flush()  # nothing left: no line
    assert [record.getMessage() for record in caplog.records] == [
        "company refused",
        "company refused (1 more like it in the last 3 s, not logged one by one)",
    ]
