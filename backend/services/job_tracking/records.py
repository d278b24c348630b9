"""The job layer: durable job records kept in step with RQ, progress, cancellation, reaping.

Use cases call `submit` (never RQ directly). Workers report what their jobs
do through `job_runs`, which writes each job's live state to Redis
(`job_state`); the `Job` rows follow in batches, and reads here lay the live
state over them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import redis
import structlog
from flask import current_app
from rq import Callback, Queue, Retry, Worker
from rq.command import send_stop_job_command
from rq.exceptions import NoSuchJobError
from rq.job import Job as RQJob
from rq.job import JobStatus
from rq.registry import StartedJobRegistry
from rq.results import Result

from backend.db import db
from backend.errors import Conflict
from backend.models import TERMINAL_STATUSES, Job, User, utcnow
from backend.queues import enqueue
from backend.redis_store import get_redis
from backend.services import job_runs, job_state
from backend.services.access import get_visible, is_admin
from backend.services.job_runs import KIND, OWNER, TRACKED, JobRef, mark_cancelled

log = structlog.get_logger(__name__)

ABANDONED_MESSAGE = "The worker running this job stopped unexpectedly."


@dataclass(frozen=True)
class JobKind:
    """How jobs of one kind run: time limit, retries, and what to do if their worker dies."""

    timeout: int = 600
    retry: Retry | None = None
    requeue_if_abandoned: bool = False


KINDS: dict[str, JobKind] = {
    "products.import": JobKind(timeout=3600),
    "orders.export": JobKind(timeout=1800, requeue_if_abandoned=True),
    "files.renditions": JobKind(timeout=300, requeue_if_abandoned=True),
}


def submit(
    *, owner: User | None, kind: str, func: Callable[..., Any], args: tuple[Any, ...] = ()
) -> Job:
    """Record a job and put it on a queue; return the record (status `queued`).

    Raises `redis.RedisError` (nothing is left behind) when Redis is unreachable.
    """
    spec = KINDS.get(kind, JobKind())
    job_id = uuid.uuid4().hex
    with db.atomic():
        record = Job.create(id=job_id, user=owner, kind=kind)
    try:
        enqueue(
            func, *args, job_id=job_id, timeout=spec.timeout, retry=spec.retry,
            on_stopped=Callback("jobs.base.on_stopped"),
            meta={TRACKED: True, KIND: kind, OWNER: owner.id if owner else None},
        )  # fmt: skip
    except redis.RedisError:
        Job.delete().where(Job.id == job_id).execute()
        raise
    return record


def list_jobs(*, user: User, page: int, page_size: int) -> tuple[list[Job], int]:
    """Return a page of jobs, newest first: the caller's own, or everyone's for admins."""
    query = Job.select()
    if not is_admin(user):
        query = query.where(Job.user == user.id)
    total = query.count()
    records = list(query.order_by(Job.created_at.desc(), Job.id).paginate(page, page_size))
    job_state.overlay(records)
    return records, total


def get_job(*, user: User, job_id: str) -> Job:
    """Return a job the caller may see, as it stands now. Raises `NotFound`."""
    record = get_visible(Job, job_id, user=user, owner=Job.user)
    job_state.overlay([record])
    return record


def cancel(*, user: User, job_id: str) -> Job:
    """Cancel a queued job at once, or ask a running one to stop.

    A running job is stopped by its worker and then recorded as cancelled.
    Raises `NotFound`, or `Conflict` (`job_finished`) when it already ended.
    """
    record = get_job(user=user, job_id=job_id)
    if record.status in TERMINAL_STATUSES:
        raise Conflict(f"This job already {record.status}.", error="job_finished")
    connection = get_redis()
    try:
        rq_job = RQJob.fetch(job_id, connection=connection)
    except NoSuchJobError:
        mark_cancelled(JobRef.of(record))
        return get_job(user=user, job_id=job_id)
    if rq_job.get_status() == JobStatus.STARTED:
        Job.update(cancel_requested=utcnow()).where(Job.id == job_id).execute()
        send_stop_job_command(connection, job_id)
    else:
        rq_job.cancel()
        mark_cancelled(JobRef.of(record))
    return get_job(user=user, job_id=job_id)


def record_finished(refs: list[JobRef]) -> int:
    """Record those of `refs` that RQ has finished as succeeded, with the results RQ stored.

    Their worker calls this once their work horses are done (`jobs.worker`),
    and the reaper for a job whose worker died before it could. Returns how
    many RQ had finished. Raises `redis.RedisError`.
    """
    connection = get_redis()
    pipe = connection.pipeline(transaction=False)
    for ref in refs:
        pipe.hget(RQJob.key_for(ref.id), "status")
        pipe.xrevrange(Result.get_key(ref.id), "+", "-", count=1)
        pipe.hgetall(job_state.key(ref.id))
    replies = pipe.execute()
    successes: list[job_runs.Success] = []
    for index, ref in enumerate(refs):
        status, latest, state = replies[3 * index : 3 * index + 3]
        if status == JobStatus.FINISHED.value.encode():
            progress = job_runs.progress_in(job_state.decode(state))
            successes.append((ref, _stored_result(ref.id, latest, connection), progress))
    job_runs.record_successes(successes)
    return len(successes)


def _stored_result(job_id: str, latest: list[Any], connection: redis.Redis) -> Any:
    if not latest:  # kept for no time (result_ttl=0)
        return None
    result_id, payload = latest[0]
    try:
        return Result.restore(job_id, result_id.decode(), payload, connection).return_value
    except Exception:  # a result this process cannot load must not hold up the others
        log.exception("job_result_unreadable", job_id=job_id)
        return None


def reap_abandoned() -> dict[str, int]:
    """Find started jobs whose worker is gone; fail them or requeue them per kind.

    A job RQ finished whose success was never recorded is recorded now.
    Returns counts of jobs failed, requeued and succeeded.
    """
    counts = {"failed": 0, "requeued": 0, "succeeded": 0}
    connection = get_redis()
    job_runs.sync_records()  # rows of jobs that started but never synced, included
    for record in Job.select().where(Job.status == "started"):
        if _still_running(connection, record.id):
            continue
        if record_finished([JobRef.of(record)]):  # its worker died before it could
            job_state.sync([record.id])
            counts["succeeded"] += 1
            continue
        if KINDS.get(record.kind, JobKind()).requeue_if_abandoned and _requeue(connection, record):
            counts["requeued"] += 1
        else:
            job_runs.end(JobRef.of(record), "failed", error=ABANDONED_MESSAGE, sync_now=True)
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
    job_state.write(record.id, {"status": "queued", "updated_at": utcnow()})
    job_state.sync([record.id])
    return True
