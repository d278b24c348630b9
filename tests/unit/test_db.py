"""Database binding, migrations, the base model and commit-time hooks."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from peewee import PostgresqlDatabase, SqliteDatabase
from playhouse.pool import PooledPostgresqlDatabase

from backend.db import database_from_url, db, migrate
from backend.models import User


def test_sqlite_url_gets_wal_busy_timeout_and_foreign_keys(tmp_path: Path) -> None:
    database = database_from_url(f"sqlite:///{tmp_path}/nested/app.db")
    assert isinstance(database, SqliteDatabase)
    with database.connection_context():
        assert database.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert database.execute_sql("PRAGMA busy_timeout").fetchone()[0] == 5000
        assert database.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 1
    assert (tmp_path / "nested" / "app.db").exists()


def test_postgres_url_is_plain_in_development_and_pooled_in_production() -> None:
    url = "postgresql://user:p%40ss@db.internal:5433/shop"
    plain = database_from_url(url)
    assert type(plain) is PostgresqlDatabase
    assert plain.database == "shop"
    assert plain.connect_params["password"] == "p@ss"
    assert plain.connect_params["port"] == 5433
    pooled = database_from_url(url, pooled=True, pool_size=7)
    assert isinstance(pooled, PooledPostgresqlDatabase)
    assert pooled._max_connections == 7


@pytest.mark.parametrize("url", ["mysql://root@localhost/x", "sqlite://", "sqlite:///"])
def test_unsupported_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="DATABASE_URL"):
        database_from_url(url)


def test_migrations_are_idempotent(app: Flask) -> None:
    with db.connection_context():
        assert migrate(db.obj) == []
        assert "user" in db.get_tables()


def test_db_upgrade_command_runs_twice(tmp_path: Path, make_app: Callable[..., Flask]) -> None:
    app = make_app(DATABASE_URL=f"sqlite:///{tmp_path}/fresh.db")
    runner: FlaskCliRunner = app.test_cli_runner()
    first = runner.invoke(args=["db", "upgrade"])
    assert first.exit_code == 0, first.output
    assert "applied: 0001_initial" in first.output
    second = runner.invoke(args=["db", "upgrade"])
    assert second.exit_code == 0
    assert "database is up to date" in second.output
    status = runner.invoke(args=["db", "status"])
    assert "0001_initial: applied" in status.output


def test_base_model_stamps_times_in_utc(app: Flask) -> None:
    user = User.create(email="a@example.test", password_hash="x")
    created = user.created_at
    assert created.tzinfo is UTC
    time.sleep(0.01)
    user.full_name = "Ada"
    user.save()
    reloaded = User.get_by_id(user.id)
    assert reloaded.created_at == created
    assert reloaded.updated_at > created
    assert reloaded.updated_at.tzinfo is UTC


def test_aware_datetimes_in_other_zones_are_stored_as_utc(app: Flask) -> None:
    plus_two = datetime(2026, 11, 26, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    user = User.create(email="b@example.test", password_hash="x", created_at=plus_two)
    assert User.get_by_id(user.id).created_at == datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def test_request_connection_is_closed_after_the_request(app: Flask) -> None:
    with app.test_request_context("/"):
        User.select().count()
        assert not db.is_closed()
    assert db.is_closed()


def test_sqlite_is_pooled_in_production(tmp_path: Path) -> None:
    from playhouse.pool import PooledSqliteDatabase

    pooled = database_from_url(f"sqlite:///{tmp_path}/p.db", pooled=True, pool_size=3)
    assert isinstance(pooled, PooledSqliteDatabase)
    assert pooled._max_connections == 3
    assert pooled.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
    pooled.close()


def test_a_forked_child_never_reuses_the_parents_connections(tmp_path: Path) -> None:
    import os

    from backend.db import bind, rebind_in_child

    database = bind(f"sqlite:///{tmp_path}/f.db", pooled=True, pool_size=3)
    try:
        database.connect()
        parent_conn = database.connection()
        database.close()  # back into the pool
        database.connect()
        assert db.connection() is parent_conn
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child reports through the pipe
            fresh = db.obj is not database and db.connection() is not parent_conn
            os.write(write, b"fresh" if fresh else b"same")
            os._exit(0)
        os.waitpid(pid, 0)
        assert os.read(read, 10) == b"fresh"
        assert db.obj is database  # the parent keeps its database and its connection
        assert db.connection() is parent_conn
        rebind_in_child()  # what a child does, here: a new database, the old one untouched
        assert db.obj is not database
        assert db.is_closed()
        assert not database.is_closed()
    finally:
        database.close()
        db.initialize(None)
