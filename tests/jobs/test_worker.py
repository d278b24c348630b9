"""The Procfile's worker class: one app per worker, and a WAL kept open for its horses."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from flask import Flask
from peewee import PostgresqlDatabase

from backend.db import database_from_url
from backend.queues import QUEUE_NAMES
from backend.redis_store import get_redis
from jobs.worker import Worker, keep_wal_open


def test_the_worker_keeps_an_idle_connection_so_horses_closing_theirs_stay_cheap(
    tmp_path: Path,
) -> None:
    path = tmp_path / "w.db"
    database = database_from_url(f"sqlite:///{path}")
    database.execute_sql("CREATE TABLE t (x INTEGER)")
    database.close()
    keeper = keep_wal_open(database)
    assert keeper is not None
    try:
        horse = sqlite3.connect(path)
        horse.execute("PRAGMA journal_mode=wal")
        horse.execute("INSERT INTO t VALUES (1)")
        horse.commit()
        horse.close()
        # Without the keeper this close was the last one: SQLite would have
        # checkpointed and deleted the WAL.
        assert path.with_name("w.db-wal").exists()
        assert keeper.execute("SELECT count(*) FROM t").fetchone() == (1,)
    finally:
        keeper.close()


def test_no_keeper_for_other_databases() -> None:
    assert keep_wal_open(PostgresqlDatabase("x")) is None
    assert keep_wal_open(database_from_url("sqlite:///:memory:")) is None


def test_the_worker_builds_the_app_once(app: Flask) -> None:
    worker = Worker(list(QUEUE_NAMES), connection=get_redis())
    assert worker.job_monitoring_interval == app.config["WORKER_HEARTBEAT_SECONDS"]
