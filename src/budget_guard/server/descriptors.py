"""The process's file descriptor limit: raised as far as allowed, and budgeted.

Every client connection holds a descriptor, and so does every upstream and store connection.
A worker that runs out cannot ``accept()`` (asyncio then logs a traceback every second), nor
open an upstream connection for a request it already accepted. So the soft limit is raised to
the hard one at start (the usual soft default, 1024, is an accident of history, not a
decision), and the connection cap is derived from what is left after the worker's own needs.
"""

from __future__ import annotations

import resource

BASE_RESERVE = 256
"""Descriptors a worker uses besides client and pool connections: listening sockets, log
files, the event loop's own, encodings read from disk, a margin for the unforeseen."""

STORE_POOL = 100
"""The Redis store's connection pool (``RedisStore(max_connections=100)``)."""


def raise_descriptor_limit() -> int:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit; return the soft limit now in force.

    Workers started afterwards (``--workers``) inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        # Linux refuses an infinite RLIMIT_NOFILE; keep what the kernel allows instead.
        hard = max(soft, _kernel_open_max())
    if soft != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    return soft


def reserved_descriptors(*, upstream_pool: int, demo_upstream: bool, remote_store: bool) -> int:
    """What a worker needs besides its client connections.

    The built-in demo upstream runs in the same process, so each pooled upstream connection
    costs two descriptors there: the proxy's end and the demo server's end."""
    return (
        BASE_RESERVE
        + upstream_pool * (2 if demo_upstream else 1)
        + (STORE_POOL if remote_store else 0)
    )


def _kernel_open_max() -> int:
    try:
        with open("/proc/sys/fs/nr_open", encoding="ascii") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 1024 * 1024
