"""Connections accepted a few per wake-up in each gevent worker, not one.

Speeds up: a reconnect storm (the storm rows of `bench/sse.py`: 50,000 streams
opened at 2,500/s on 3 workers). With siblings, gunicorn's gevent worker
accepts one connection each time its listening socket wakes it
(`max_accept = 1`, so that connections spread over the workers). In a storm
every connection then costs a whole turn of the event loop, every worker is
woken for connections a sibling takes, and the streams that open in one turn
are too few to share their Redis round trips (`round_trips`).

What it does instead: the worker's servers accept up to `ACCEPT_BATCH`
connections per wake-up, which still spreads a storm over the workers (each
takes a handful of what is queued, then the others get their turn) and never
more than the worker's pool has room for (gevent's server checks). Installed
by `post_worker_init` in each gunicorn worker, before the worker builds its
servers: the name gunicorn's gevent worker builds them from
(`gunicorn.workers.ggevent.StreamServer`) is bound to a subclass in that
process. Costs: none held. Tests: `tests/optimizations/test_accept_batch.py`.
"""

from __future__ import annotations

import sys
from typing import Any

from gevent.server import StreamServer  # type: ignore[import-untyped]  # no stubs

from backend.optimizations.switch import enabled_in

ACCEPT_BATCH = 5  # measured: 1 (gunicorn's) -> 1,650 streams set up per second, 5 -> 2,340


class BatchAcceptingServer(StreamServer):
    """gevent's `StreamServer`, accepting at least `ACCEPT_BATCH` connections per wake-up."""

    max_accept: int  # gevent's: connections accepted per wake-up of the listening socket

    def start(self) -> None:
        """Start serving (gunicorn sets `max_accept` between building and starting)."""
        self.max_accept = max(self.max_accept, ACCEPT_BATCH)
        super().start()


def install_in(worker: Any) -> bool:
    """Make `worker` build batching servers; whether it did.

    Only for gunicorn's gevent worker (whose module builds `StreamServer`s),
    not yet running, whose app has `OPTIMIZATIONS` on.
    """
    module = sys.modules.get(type(worker).__module__)
    builds = getattr(module, "StreamServer", None)
    if not enabled_in(getattr(worker, "wsgi", None)) or builds is not StreamServer:
        return False
    module.StreamServer = BatchAcceptingServer  # type: ignore[union-attr]  # found just above
    return True
