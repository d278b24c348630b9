"""How many gunicorn workers, connections and queued connections fit this box.

Read by `backend.gunicorn_conf` in the master. Event streams are mostly idle
sockets, so a gevent worker is bounded by its open-file limit long before its
CPU: each stream is one descriptor. The defaults therefore come from the box
(CPUs, the open-file limit, the kernel's accept-queue cap) and any of them can
be set explicitly (`WEB_CONCURRENCY`, `WORKER_CONNECTIONS`, `WEB_BACKLOG`).
"""

from __future__ import annotations

import os
import resource
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

RESERVED_FILES = 1000  # per worker: database and Redis connections, log and metrics files
SOMAXCONN = Path("/proc/sys/net/core/somaxconn")
DEFAULT_BACKLOG = 2048  # gunicorn's own, where the kernel's cap cannot be read


@dataclass(frozen=True)
class WebSizing:
    """gunicorn's `workers`, `worker_connections` and `backlog` for this box."""

    workers: int
    worker_connections: int
    backlog: int


def raise_open_file_limit() -> int:
    """Raise this process's soft open-file limit to its hard limit; return the new soft limit.

    Workers forked afterwards inherit it. Where the hard limit is unlimited
    the soft one is left as it is.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return soft


def accept_queue_cap() -> int:
    """Return the kernel's cap on a listening socket's accept queue (`somaxconn`)."""
    try:
        return int(SOMAXCONN.read_text().strip())
    except (OSError, ValueError):
        return DEFAULT_BACKLOG


def size_web(env: Mapping[str, str], *, cpus: int, open_files: int, queue_cap: int) -> WebSizing:
    """Return the sizing: explicit settings in `env` win, the rest follow from the box.

    - workers: one per CPU plus one (a worker waiting on the database or Redis
      leaves its CPU to another), at least 2 so a restart never leaves none;
    - connections per worker: what the open-file limit leaves after
      `RESERVED_FILES`, at least 100;
    - backlog: the kernel's accept-queue cap, so a reconnect storm queues in
      the kernel instead of being refused.
    """
    workers = int(env.get("WEB_CONCURRENCY") or max(2, cpus + 1))
    connections = int(env.get("WORKER_CONNECTIONS") or max(100, open_files - RESERVED_FILES))
    backlog = int(env.get("WEB_BACKLOG") or queue_cap)
    return WebSizing(workers=workers, worker_connections=connections, backlog=backlog)


def for_this_box(env: Mapping[str, str] = os.environ) -> WebSizing:
    """Raise the open-file limit and size gunicorn for this machine and `env`."""
    return size_web(
        env,
        cpus=os.cpu_count() or 1,
        open_files=raise_open_file_limit(),
        queue_cap=accept_queue_cap(),
    )
