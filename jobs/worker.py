"""The RQ worker classes: `rq worker -w jobs.worker.Worker` (the Procfile's) and a simple one.

Job records keep their live state in Redis (`backend.services.job_state`).
These workers write a tracked job's start before they fork, its success
after (from the result RQ stored), and copy live states into the `Job` rows,
all from their own long-lived process: at most every `SYNC_EVERY_SECONDS`
while jobs keep coming, and whenever the queues run dry or the worker stops.
A forked work horse writes only progress and failures, and never opens a
database connection for the bookkeeping of its job.
"""

from __future__ import annotations

import sqlite3
import time
from typing import TYPE_CHECKING, Any

import redis
import rq
import structlog
from peewee import SqliteDatabase
from rq.executions import Execution
from rq.job import Job as RQJob
from rq.queue import Queue

from backend.redis_store import get_redis
from jobs.base import app_context, recorded_by_worker, tracked

if TYPE_CHECKING:
    from backend.services.job_runs import JobRef

SYNC_EVERY_SECONDS = 0.25

log = structlog.get_logger(__name__)


class RecordSyncing(rq.worker.BaseWorker):
    """Worker behaviour shared by both classes: one app, and job rows synced in batches."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Create the worker and the app its jobs run in.

        While a job runs, the worker writes a heartbeat every
        `WORKER_HEARTBEAT_SECONDS` (default 10), by which the cron's reaper
        tells a dead worker from a slow job.
        """
        with app_context() as app:  # in tests, the test's app
            kwargs["connection"] = shared_connection(kwargs.get("connection"), get_redis())
        kwargs.setdefault("job_monitoring_interval", app.config["WORKER_HEARTBEAT_SECONDS"])
        super().__init__(*args, **kwargs)
        # RQ just raised the pool's socket timeout above its blocking dequeue's
        # wait: connections made before that would time out while idle.
        self.connection.connection_pool.reset()
        self._wal_keeper = keep_wal_open(app.extensions["peewee"])
        self._unsynced = False
        self._synced_at = time.monotonic()
        self._ran: list[JobRef] = []  # tracked jobs run since the last sync

    def execute_job(self, job: RQJob, queue: Queue) -> None:
        """Record the start, run the job; record its success and sync rows if due.

        Start and success are recorded here, around the fork, where the code
        is warm: in a fresh work horse the same writes cost three times as
        much. Successes are recorded in batches, with the row sync: at once
        when no more work waits, else at most `SYNC_EVERY_SECONDS` later.
        A failure is recorded by the horse (`jobs.base`), which has the
        exception; a stop by RQ's stop callback.
        """
        try:
            ref = self._record_start(job)
            super().execute_job(job, queue)
            if ref is not None:
                self._ran.append(ref)
        finally:
            self._unsynced = True
            if time.monotonic() - self._synced_at >= SYNC_EVERY_SECONDS:
                self.sync_job_records()

    def perform_job(self, job: RQJob, queue: Queue, execution: Execution) -> bool:
        """Run the job (in the horse); the job layer leaves start and success to this worker."""
        with recorded_by_worker():
            return super().perform_job(job, queue, execution)

    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[RQJob, Queue] | None:
        """Sync job rows before waiting on empty queues, then wait for the next job."""
        if self._unsynced and not self._work_waiting():
            self.sync_job_records()
        return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)

    def teardown(self) -> None:
        """Sync what is left before the worker goes."""
        if not self.is_horse and self._unsynced:
            self.sync_job_records()
        super().teardown()

    def sync_job_records(self) -> None:
        """Record the successes of the jobs run since the last sync, then sync pending rows.

        Errors are logged, never raised: the states stay pending for the
        next sync, and successes not recorded are found by the reaper.
        """
        from backend.services.job_runs import sync_records
        from backend.services.jobs import record_finished

        self._synced_at = time.monotonic()
        ran, self._ran = self._ran, []
        try:
            with app_context():
                if ran:
                    record_finished(ran)
                sync_records()
        except Exception:
            log.exception("job_sync_failed", unrecorded=[ref.id for ref in ran])
            return
        self._unsynced = False

    def _record_start(self, job: RQJob) -> JobRef | None:
        from backend.services.job_runs import mark_started

        ref = None
        try:
            with app_context():
                ref = tracked(job)
                if ref is not None:
                    mark_started(ref)
        except Exception:  # the job still runs; its end is recorded all the same
            log.exception("job_start_not_recorded", job_id=job.id)
        return ref

    def _work_waiting(self) -> bool:
        pipe = self.connection.pipeline(transaction=False)
        for queue in self.queues:
            pipe.llen(queue.key)
        return any(pipe.execute())


def shared_connection(given: redis.Redis | None, app_client: redis.Redis) -> redis.Redis | None:
    """The app's Redis client when `given` (from `rq worker --url`) reaches the same server.

    Sharing it lets a work horse do RQ's bookkeeping and the job's own Redis
    work over one connection, opened without redis-py's per-connection
    package lookup; a different server keeps `given`.
    """
    if given is None or _target(given) == _target(app_client):
        return app_client
    return given


def _target(client: redis.Redis) -> tuple[Any, ...]:
    settings = client.connection_pool.connection_kwargs
    return tuple(settings.get(name) for name in ("host", "port", "path", "db", "username"))


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
