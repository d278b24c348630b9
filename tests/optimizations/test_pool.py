"""The pool that skips `SELECT 1` for connections returned under a second ago (PostgreSQL)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from playhouse.pool import PooledPostgresqlDatabase

from backend.config import ConfigError, load_config
from backend.db import database_from_url, db
from backend.optimizations.pool import RecentlyCheckedPool

POSTGRES = os.environ.get("DATABASE_URL", "")
needs_postgres = pytest.mark.skipif(
    not POSTGRES.startswith("postgres"), reason="the pool is PostgreSQL's (DATABASE_URL)"
)


@pytest.fixture
def pool() -> Iterator[RecentlyCheckedPool]:
    """A `RecentlyCheckedPool` of two connections on the test server."""
    database = database_from_url(
        POSTGRES, pooled=True, pool_size=2, postgres_pool=RecentlyCheckedPool
    )
    assert isinstance(database, RecentlyCheckedPool)
    yield database
    database.close_all()


def _pings(database: PooledPostgresqlDatabase) -> int:
    """How many round-trip checks (`SELECT 1`) the pool ran so far."""
    return int(getattr(database, "pings", 0))


@pytest.fixture(autouse=True)
def _count_pings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Count the checks Peewee's own pool runs (the method our pool falls back to)."""
    original = PooledPostgresqlDatabase._is_closed

    def counting(self: PooledPostgresqlDatabase, conn: object) -> bool:
        self.pings = getattr(self, "pings", 0) + 1
        return bool(original(self, conn))

    monkeypatch.setattr(PooledPostgresqlDatabase, "_is_closed", counting)


@needs_postgres
def test_a_just_returned_connection_is_handed_out_without_a_check(
    pool: RecentlyCheckedPool,
) -> None:
    pool.connect()
    first = pool.connection()
    pool.close()
    pool.connect()
    assert pool.connection() is first
    assert _pings(pool) == 0
    assert pool.execute_sql("SELECT 2").fetchone() == (2,)
    pool.close()


@needs_postgres
def test_an_older_one_is_checked_as_peewee_does(pool: RecentlyCheckedPool) -> None:
    pool.trust_seconds = 0.0
    pool.connect()
    pool.close()
    pool.connect()
    assert _pings(pool) == 1
    pool.close()


@needs_postgres
def test_a_connection_the_server_ended_is_discarded_after_one_failure(
    pool: RecentlyCheckedPool,
) -> None:
    from peewee import OperationalError

    pool.connect()
    victim = pool.connection()
    backend_pid = victim.get_backend_pid()
    pool.close()
    killer = database_from_url(POSTGRES)
    killer.connect()
    killer.execute_sql("SELECT pg_terminate_backend(%s)", (backend_pid,))
    killer.close()
    pool.connect()  # trusted: it was returned a moment ago
    with pytest.raises((OperationalError, Exception)):
        pool.execute_sql("SELECT 1")
    pool.close()
    pool.connect()  # the closed one is discarded: a new connection
    assert pool.connection() is not victim
    assert pool.execute_sql("SELECT 3").fetchone() == (3,)
    pool.close()


@needs_postgres
def test_the_layer_rebinds_production_postgres(make_app: Callable[..., Flask]) -> None:
    secrets = {"SECRET_KEY": "s" * 40, "JWT_SECRET_KEY": "j" * 40}
    app = make_app(OPTIMIZATIONS=True, ENV="production", DATABASE_POOL_TRUST_SECONDS=0.5, **secrets)
    assert isinstance(db.obj, RecentlyCheckedPool)
    assert app.extensions["peewee"] is db.obj
    assert RecentlyCheckedPool.trust_seconds == 0.5


def test_other_databases_stay_as_built(make_app: Callable[..., Flask]) -> None:
    make_app(OPTIMIZATIONS=True)
    assert not isinstance(db.obj, RecentlyCheckedPool)


def test_the_trust_window_is_a_number(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_POOL_TRUST_SECONDS", "0.25")
    assert load_config()["DATABASE_POOL_TRUST_SECONDS"] == 0.25
    monkeypatch.setenv("DATABASE_POOL_TRUST_SECONDS", "soon")
    with pytest.raises(ConfigError, match="DATABASE_POOL_TRUST_SECONDS"):
        load_config()
