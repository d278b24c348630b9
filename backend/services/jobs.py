"""The job layer: durable job records kept in step with RQ, progress, cancellation, reaping.

Use cases call `submit` (never RQ directly). The worker side (`jobs.base`)
calls `mark_started`, `report_progress`, `mark_succeeded`, `mark_failed` and
`mark_cancelled`; every finished job publishes exactly one terminal event
(`job.succeeded|failed|cancelled`) on its owner's channel.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import redis
from flask import current_app
from peewee import Expression
from rq import Callback, Queue, Retry, Worker
from rq.command import send_stop_job_command
from rq.exceptions import NoSuchJobError
from rq.job import Job as RQJob
from rq.job import JobStatus
from rq.registry import StartedJobRegistry

from backend.db import db
from backend.errors import Conflict
from backend.events import publish_after_commit
from backend.models import TERMINAL_STATUSES, Job, User, utcnow
from backend.queues import enqueue
from backend.redis_store import get_redis
from backend.services.access import get_visible, is_admin

TRACKED = "tracked"  # RQ job meta flag: this job has a record
PROGRESS_EVERY_SECONDS = 0.1  # at most 10 job.progress events per second per job
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

_last_sent: dict[str, float] = {}
_held_back: dict[str, tuple[int, int | None, str]] = {}


def job_payload(job: Job) -> dict[str, Any]:
    """The job as carried by `job.*` events."""
    return {
        "id": job.id,
        "kind": job.kind,
        "status": job.status,
        "progress": job.progress,
        "result": job.result,
        "error": job.error,
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
            on_stopped=Callback("jobs.base.on_stopped"), meta={TRACKED: True},
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
    return list(query.order_by(Job.created_at.desc(), Job.id).paginate(page, page_size)), total


def get_job(*, user: User, job_id: str) -> Job:
    """Return a job the caller may see. Raises `NotFound`."""
    return get_visible(Job, job_id, user=user, owner=Job.user)


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
        return mark_cancelled(job_id)
    if rq_job.get_status() == JobStatus.STARTED:
        Job.update(cancel_requested=utcnow()).where(Job.id == job_id).execute()
        send_stop_job_command(connection, job_id)
        return Job.get_by_id(job_id)
    rq_job.cancel()
    return mark_cancelled(job_id)


def mark_started(job_id: str) -> bool:
    """Record that a worker started the job; False if it has no record (a plain RQ job)."""
    now = utcnow()
    started = (
        Job.update(status="started", started_at=now, updated_at=now, error=None)
        .where((Job.id == job_id) & Job.status.not_in(TERMINAL_STATUSES))
        .execute()
    )
    return bool(started)


def report_progress(job_id: str, done: int, total: int | None, message: str) -> None:
    """Record progress and publish `job.progress`, at most every 0.1 s per job.

    An update inside that window is held back, not lost: the next one that
    goes out, or `flush_progress` when the job ends, carries it.
    """
    now = time.monotonic()
    last_sent = _last_sent.get(job_id)
    if last_sent is not None and now - last_sent < PROGRESS_EVERY_SECONDS:
        _held_back[job_id] = (done, total, message[:300])
        return
    _last_sent[job_id] = now
    _held_back.pop(job_id, None)
    _write_progress(job_id, done, total, message[:300])


def flush_progress(job_id: str) -> None:
    """Write and publish the last progress update if it was held back."""
    _last_sent.pop(job_id, None)
    held = _held_back.pop(job_id, None)
    if held is not None:
        _write_progress(job_id, *held)


def mark_succeeded(job_id: str, result: Any) -> None:
    """Record the result and publish `job.succeeded`."""
    flush_progress(job_id)
    _finish(job_id, "succeeded", result=result)


def mark_failed(job_id: str, error: str, *, will_retry: bool) -> None:
    """Record a failure: back to `queued` if RQ will retry it, else `failed` with an event."""
    flush_progress(job_id)
    if will_retry:
        Job.update(status="queued", error=error[:2000], updated_at=utcnow()).where(
            Job.id == job_id
        ).execute()
        return
    _finish(job_id, "failed", error=error[:2000])


def mark_cancelled(job_id: str) -> Job:
    """Record a cancellation and publish `job.cancelled`."""
    _finish(job_id, "cancelled", error=None)
    return Job.get_by_id(job_id)


def reap_abandoned() -> dict[str, int]:
    """Find started jobs whose worker is gone; fail them or requeue them per kind.

    Returns counts of jobs failed and requeued.
    """
    counts = {"failed": 0, "requeued": 0}
    connection = get_redis()
    for record in Job.select().where(Job.status == "started"):
        if _still_running(connection, record.id):
            continue
        if KINDS.get(record.kind, JobKind()).requeue_if_abandoned and _requeue(connection, record):
            counts["requeued"] += 1
        else:
            _finish(record.id, "failed", error=ABANDONED_MESSAGE)
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
    Job.update(status="queued", updated_at=utcnow()).where(Job.id == record.id).execute()
    return True


def _write_progress(job_id: str, done: int, total: int | None, message: str) -> None:
    Job.update(
        progress_done=done, progress_total=total, progress_message=message, updated_at=utcnow()
    ).where(Job.id == job_id).execute()
    record = Job.get_or_none(Job.id == job_id)
    if record is not None:
        _publish(record, "job.progress")


def _finish(job_id: str, status: str, **values: Any) -> None:
    now = utcnow()
    with db.atomic():
        ended = (
            Job.update(status=status, finished_at=now, updated_at=now, **values)
            .where((Job.id == job_id) & _not_finished())
            .execute()
        )
        record = Job.get_or_none(Job.id == job_id)
        if ended and record is not None:
            _publish(record, f"job.{status}")


def _not_finished() -> Expression:
    return Job.status.not_in(TERMINAL_STATUSES)


def _publish(record: Job, event: str) -> None:
    if record.user_id is not None:
        publish_after_commit(f"user:{record.user_id}", event, job_payload(record))
