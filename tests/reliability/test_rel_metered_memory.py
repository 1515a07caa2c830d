"""Metering holds a bounded window of each answer, not the answer: 40 clients fetching a 15 MB
embeddings answer at once through the guarded proxy raise its peak resident set no more than
the same load does where the guard does not read the answer, or where there is no guard.

Real servers in subprocesses, each fresh (``VmHWM`` is a whole-life peak), driven by the
benchmark's own code (``benchmarks/bench_metering.py``, which runs the full-size load of
100 × 15.6 MB): the guarded proxy on ``/v1/embeddings``; the same guard on a path configured
``charge = "free"`` (forwarded, its answer not read); and the bare proxy, which starts over
100 MiB lighter (no tiktoken encodings, no counting workers), so against it the growth under load is
compared. Before the answer was metered as it passed, the metered side peaked at about
740 MiB here (15 MB held and parsed per answer in flight).
"""

from __future__ import annotations

from benchmarks.bench_metering import measure

CONCURRENCY = 40
BODY_BYTES = 15_000_000
BOUND = 1.3
SLACK_MIB = 8.0
"""Allocator noise on a growth of about 12 MiB: a whole answer held would be 15 MB each."""


def test_peak_memory_metering_large_answers_is_that_of_not_metering_them() -> None:
    samples = measure(CONCURRENCY, BODY_BYTES, rounds=1)
    metered, unmetered, bare = (samples[side][0] for side in ("metered", "unmetered", "bare"))
    print(
        f"\npeak RSS: metered {metered.peak:.0f} MiB, unmetered path {unmetered.peak:.0f} MiB,"
        f" bare proxy {bare.peak:.0f} MiB; growth under load: metered {metered.growth:.1f},"
        f" bare {bare.growth:.1f} MiB"
    )
    assert metered.peak <= BOUND * unmetered.peak
    assert metered.growth <= BOUND * bare.growth + SLACK_MIB
