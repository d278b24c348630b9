"""PostgreSQL connections handed out of the pool without a round trip when just returned.

Speeds up: every request that touches PostgreSQL in production (the pool is
only used there); measured by the PostgreSQL rows of `bench/rest.py`
(`GET /api/v1/orders/{id} (Bearer)` above all). Peewee's pool checks each
connection it hands out with `SELECT 1` (`is_connection_closed`): a full round
trip to the server before the request's first real query, which on a busy
2-core box cost about a third of an authenticated read.

What it does instead: a connection that went back to the pool less than
`DATABASE_POOL_TRUST_SECONDS` ago (1 s by default) and whose driver reports
it idle (a local flag, no round trip) is handed out as it is. Older ones get
Peewee's check as before. Why it is correct: the check only guards against a
server that went away while the connection sat in the pool. Within the window
that can still happen (a database restart at that very instant); the first
query then fails, the request answers 503 `service_unavailable` like any
database outage, and psycopg2 marks the connection closed, so the pool
discards it on the next checkout. Costs: one float per pooled connection.
Tests: `tests/optimizations/test_pool.py`.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Flask
from playhouse.pool import PooledPostgresqlDatabase

from backend.db import db, rebind_with

DEFAULT_TRUST_SECONDS = 1.0


class RecentlyCheckedPool(PooledPostgresqlDatabase):
    """A PostgreSQL pool that trusts a connection returned under `trust_seconds` ago."""

    trust_seconds = DEFAULT_TRUST_SECONDS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Build the pool as Peewee does, with no connection returned yet."""
        super().__init__(*args, **kwargs)
        self._returned_at: dict[int, float] = {}

    def _close(self, conn: Any, close_conn: bool = False) -> None:
        key = self.conn_key(conn)
        self._returned_at.pop(key, None)
        super()._close(conn, close_conn)
        if not close_conn and not conn.closed:
            self._returned_at[key] = time.monotonic()

    def _is_closed(self, conn: Any) -> bool:
        returned_at = self._returned_at.pop(self.conn_key(conn), None)
        recent = returned_at is not None and time.monotonic() - returned_at < self.trust_seconds
        if recent and not conn.closed and self._adapter.txn_status(conn) == self._adapter.txn_idle:
            return False
        return bool(super()._is_closed(conn))


def init_app(app: Flask) -> None:
    """Rebind a pooled PostgreSQL database as a `RecentlyCheckedPool`; anything else stays."""
    if not isinstance(db.obj, PooledPostgresqlDatabase):
        return
    RecentlyCheckedPool.trust_seconds = float(
        app.config.get("DATABASE_POOL_TRUST_SECONDS", DEFAULT_TRUST_SECONDS)
    )
    app.extensions["peewee"] = rebind_with(postgres_pool=RecentlyCheckedPool)
