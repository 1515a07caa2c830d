"""Store-outage lines: the first at once, then at most one of a kind per interval, each
saying how many it stands for, so an outage under load does not flood the log."""

from __future__ import annotations

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
