"""The RQ worker class the Procfile runs: `rq worker -w jobs.worker.Worker`."""

from __future__ import annotations

import sqlite3
from typing import Any

import rq
from peewee import SqliteDatabase

from jobs.base import get_app


class Worker(rq.Worker):
    """A forking RQ worker that builds the Flask app once, before it forks per job."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Create the worker and the app its jobs run in.

        While a job runs, the worker writes a heartbeat every
        `WORKER_HEARTBEAT_SECONDS` (default 10), by which the cron's reaper
        tells a dead worker from a slow job.
        """
        app = get_app()
        kwargs.setdefault("job_monitoring_interval", app.config["WORKER_HEARTBEAT_SECONDS"])
        super().__init__(*args, **kwargs)
        self._wal_keeper = keep_wal_open(app.extensions["peewee"])


def keep_wal_open(database: Any) -> sqlite3.Connection | None:
    """Hold one idle connection to a SQLite database for the worker's life.

    Each work horse opens and closes its own connection; when the last
    connection to a WAL database closes, SQLite checkpoints and removes the
    WAL, which costs more than the job's own writes. With this one open,
    a horse's close is cheap. It is never used for queries, and horses
    never use it (`backend.db` drops inherited connections after a fork).
    Returns None for other databases.
    """
    if not isinstance(database, SqliteDatabase) or database.database == ":memory:":
        return None
    keeper = sqlite3.connect(database.database, check_same_thread=False)
    keeper.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
    return keeper
