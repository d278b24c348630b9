"""The reaper: started jobs whose worker is gone are failed, requeued, or found finished.

Run by the cron's `reap_abandoned_jobs` job (`jobs.maintenance`) every
`JOBS_REAP_INTERVAL_SECONDS`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import cast

import redis
from flask import current_app
from rq import Queue, Worker
from rq.exceptions import NoSuchJobError
from rq.job import Job as RQJob
from rq.job import JobStatus
from rq.registry import StartedJobRegistry

from backend.models import Job
from backend.redis_store import get_redis
from backend.services.job_tracking import lifecycle
from backend.services.job_tracking.lifecycle import JobRef
from backend.services.job_tracking.records import kind_of
from backend.services.job_tracking.sync import sync_rows

ABANDONED_MESSAGE = "The worker running this job stopped unexpectedly."


def reap_abandoned() -> dict[str, int]:
    """Find started jobs whose worker is gone; fail them or requeue them per kind.

    A job RQ finished whose success was never recorded is recorded now.
    Returns counts of jobs failed, requeued and succeeded.
    """
    counts = {"failed": 0, "requeued": 0, "succeeded": 0}
    connection = get_redis()
    sync_rows()  # rows of jobs that started but never synced, included
    for record in Job.select().where(Job.status == "started"):
        if _still_running(connection, record.id):
            continue
        ref = JobRef.of(record)
        if lifecycle.record_finished([ref]):  # its worker died before it could
            sync_rows([record.id])
            counts["succeeded"] += 1
        elif kind_of(record.kind).requeue_if_abandoned and _requeue(connection, record):
            counts["requeued"] += 1
        else:
            lifecycle.end(ref, "failed", error=ABANDONED_MESSAGE, sync_now=True)
            counts["failed"] += 1
    return counts


def _still_running(connection: redis.Redis, job_id: str) -> bool:
    try:
        rq_job = RQJob.fetch(job_id, connection=connection)
    except NoSuchJobError:
        return False
    status = rq_job.get_status()
    if status in (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED):
        return True
    if status != JobStatus.STARTED or not rq_job.worker_name:
        return False
    return _worker_alive(connection, rq_job.worker_name)


def _worker_alive(connection: redis.Redis, name: str) -> bool:
    """A busy worker writes a heartbeat every `WORKER_HEARTBEAT_SECONDS`; three missed = dead."""
    worker = Worker.find_by_key(f"{Worker.redis_worker_namespace_prefix}{name}", connection)
    if worker is None or worker.last_heartbeat is None:
        return False
    interval = int(current_app.config["WORKER_HEARTBEAT_SECONDS"])
    age = datetime.now(UTC) - worker.last_heartbeat.replace(tzinfo=UTC)
    return age <= timedelta(seconds=3 * interval)


def _requeue(connection: redis.Redis, record: Job) -> bool:
    try:
        rq_job = RQJob.fetch(record.id, connection=connection)
    except NoSuchJobError:
        return False
    queue = Queue(rq_job.origin, connection=connection)
    started = StartedJobRegistry(queue=queue)
    stale = [m for m in cast(list[bytes], connection.zrange(started.key, 0, -1))
             if m.decode().startswith(f"{record.id}:")]  # fmt: skip
    if stale:
        connection.zrem(started.key, *stale)
    queue.enqueue_job(rq_job)
    lifecycle.mark_requeued(record.id)
    sync_rows([record.id])
    return True
