"""The RQ worker classes: `rq worker -w jobs.worker.Worker` (the Procfile's) and a simple one.

Both build the Flask app once and keep tracked jobs' records with a
`backend.services.job_tracking.WorkerRecorder`, from their own long-lived
process: a job's start before the fork, its success after (from the result
RQ stored), in batches with the row sync. A forked work horse writes only
progress and failures, and never opens a database connection for the
bookkeeping of its job. Under a plain `rq worker` a tracked job records its
own start and success instead (slower, same records).
"""

from __future__ import annotations

import sqlite3
from typing import Any

import redis
import rq
from peewee import SqliteDatabase
from rq.executions import Execution
from rq.job import Job as RQJob
from rq.queue import Queue

from backend.redis_store import get_redis, ride_out_failovers, server_of
from backend.services.job_tracking import JobRun, WorkerRecorder, performing
from jobs.base import app_context


class RecordSyncing(rq.worker.BaseWorker):
    """Worker behaviour shared by both classes: one app, and job records kept in batches."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Create the worker and the app its jobs run in.

        While a job runs, the worker writes a heartbeat every
        `WORKER_HEARTBEAT_SECONDS` (default 10), by which the cron's reaper
        tells a dead worker from a slow job. Its Redis client retries lost
        connections for up to `REDIS_FAILOVER_WAIT_SECONDS` (a failover, a
        restart), where RQ would otherwise quit.
        """
        with app_context() as app:  # in tests, the test's app
            kwargs["connection"] = shared_connection(kwargs.get("connection"), get_redis())
        kwargs.setdefault("job_monitoring_interval", app.config["WORKER_HEARTBEAT_SECONDS"])
        super().__init__(*args, **kwargs)
        ride_out_failovers(self.connection, seconds=app.config["REDIS_FAILOVER_WAIT_SECONDS"])
        # RQ just raised the pool's socket timeout above its blocking dequeue's
        # wait: connections made before that would time out while idle.
        self.connection.connection_pool.reset()
        self._wal_keeper = keep_wal_open(app.extensions["peewee"])
        self.recorder = WorkerRecorder()
        self._run: JobRun | None = None  # the tracked run of the job being executed

    def execute_job(self, job: RQJob, queue: Queue) -> None:
        """Record the start, run the job (forked or not); record and sync when a batch is due."""
        with app_context():
            self._run = self.recorder.start(job)
        try:
            super().execute_job(job, queue)
        finally:
            run, self._run = self._run, None
            self.recorder.ran(run)
            if self.recorder.due:
                self.sync_job_records()

    def perform_job(self, job: RQJob, queue: Queue, execution: Execution) -> bool:
        """Run the job (in the horse) as the run this worker opened: start and success are ours."""
        with performing(self._run):
            return super().perform_job(job, queue, execution)

    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[RQJob, Queue] | None:
        """Record and sync before waiting on empty queues, then wait for the next job."""
        if self.recorder.unsynced and not self._work_waiting():
            self.sync_job_records()
        return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)

    def teardown(self) -> None:
        """Record and sync what is left before the worker goes."""
        if not self.is_horse and self.recorder.unsynced:
            self.sync_job_records()
        super().teardown()

    def sync_job_records(self) -> bool:
        """Record the successes collected so far and sync rows (`WorkerRecorder.sync`)."""
        with app_context():
            return self.recorder.sync()

    def _work_waiting(self) -> bool:
        pipe = self.connection.pipeline(transaction=False)
        for queue in self.queues:
            pipe.llen(queue.key)
        return any(pipe.execute())


def shared_connection(given: redis.Redis | None, app_client: redis.Redis) -> redis.Redis | None:
    """The app's Redis client when `given` (from `rq worker -c`/`--url`) reaches the same server.

    Sharing it lets a work horse do RQ's bookkeeping and the job's own Redis
    work over one connection, opened without redis-py's per-connection
    package lookup; a different server (or master, or database) keeps `given`.
    """
    if given is None or server_of(given) == server_of(app_client):
        return app_client
    return given


class Worker(RecordSyncing, rq.Worker):
    """A forking RQ worker that builds the Flask app once, before it forks per job."""


class SimpleWorker(RecordSyncing, rq.SimpleWorker):
    """A worker that runs jobs in its own process (tests, or where fork is unavailable)."""


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
