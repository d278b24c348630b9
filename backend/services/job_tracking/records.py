"""Job records as use cases see them: submit a job, read it, list them, cancel one.

Use cases call `submit` (never RQ directly), naming the job function by its
dotted path; reads lay the live state over rows that have not caught up.
"""

from __future__ import annotations

import importlib
import inspect
import uuid
from dataclasses import dataclass

import redis
from rq import Callback, Retry
from rq.command import send_stop_job_command
from rq.exceptions import NoSuchJobError
from rq.job import Job as RQJob
from rq.job import JobStatus

from backend.db import db
from backend.errors import Conflict
from backend.models import TERMINAL_STATUSES, Job, User
from backend.queues import enqueue
from backend.redis_store import get_redis
from backend.services.access import get_visible, is_admin
from backend.services.job_tracking import lifecycle, state
from backend.services.job_tracking.lifecycle import JobRef
from backend.services.job_tracking.sync import sync_rows

ON_STOPPED = "jobs.base.on_stopped"  # RQ's stop callback, run by the worker


@dataclass(frozen=True)
class JobKind:
    """How jobs of one kind run: time limit, retries, and what to do if their worker dies.

    `retryable`: a failed or cancelled job may be run again (`POST /jobs/{id}/retry`)
    with the same arguments. `spooled_input`: the position of the argument naming a
    spooled input (`backend.spool`) that the job consumes; a retry runs on a copy.
    """

    timeout: int = 600
    retry: Retry | None = None
    requeue_if_abandoned: bool = False
    retryable: bool = False
    spooled_input: int | None = None


KINDS: dict[str, JobKind] = {
    "products.import": JobKind(timeout=3600, retryable=True, spooled_input=0),
    "orders.export": JobKind(timeout=1800, requeue_if_abandoned=True, retryable=True),
    "files.renditions": JobKind(timeout=300, requeue_if_abandoned=True, retryable=True),
}


def kind_of(kind: str) -> JobKind:
    """How jobs of `kind` run (the defaults for a kind not listed in `KINDS`)."""
    return KINDS.get(kind, JobKind())


def submit(
    *,
    owner: User | None,
    kind: str,
    func: str,
    args: tuple[object, ...] = (),
    job_id: str | None = None,
    retry_of: str | None = None,
) -> Job:
    """Record a job and put it on a queue; return the record (status `queued`).

    `func` is the job function's dotted path (`"jobs.products.import_products"`);
    it and `args` are kept on the record (as JSON) for a retry. Raises
    `LookupError` when it names no function (nothing is recorded), and
    `redis.RedisError` (nothing is left behind) when Redis is unreachable.
    """
    check_job_function(func)
    spec = kind_of(kind)
    with db.atomic():
        record = Job.create(
            id=job_id or uuid.uuid4().hex, user=owner, kind=kind, func=func, args=list(args),
            retry_of=retry_of,
        )  # fmt: skip
    try:
        enqueue(
            func, *args, job_id=record.id, timeout=spec.timeout, retry=spec.retry,
            on_stopped=Callback(ON_STOPPED), meta=JobRef.of(record).meta(),
        )  # fmt: skip
    except redis.RedisError:
        Job.delete().where(Job.id == record.id).execute()
        raise
    return record


def check_job_function(path: str) -> None:
    """Check that `path` names a function a worker can import. Raises `LookupError`."""
    module_name, _, name = path.rpartition(".")
    try:
        module = importlib.import_module(module_name) if module_name else None
    except ImportError as exc:
        raise LookupError(f"no job function {path!r}: {exc}") from exc
    if not inspect.isfunction(getattr(module, name, None)):
        raise LookupError(f"no job function {path!r}")


def list_jobs(*, user: User, page: int, page_size: int) -> tuple[list[Job], int]:
    """Return a page of jobs, newest first: the caller's own, or everyone's for admins."""
    query = Job.select()
    if not is_admin(user):
        query = query.where(Job.user == user.id)
    total = query.count()
    records = list(query.order_by(Job.created_at.desc(), Job.id).paginate(page, page_size))
    state.overlay(records)
    return records, total


def get_job(*, user: User, job_id: str) -> Job:
    """Return a job the caller may see, as it stands now. Raises `NotFound`."""
    record = get_visible(Job, job_id, user=user, owner=Job.user)
    state.overlay([record])
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
        lifecycle.mark_cancelled(JobRef.of(record))
        return get_job(user=user, job_id=job_id)
    if rq_job.get_status() == JobStatus.STARTED:
        lifecycle.mark_stop_requested(job_id)
        sync_rows([job_id])
        send_stop_job_command(connection, job_id)
    else:
        rq_job.cancel()
        lifecycle.mark_cancelled(JobRef.of(record))
    return get_job(user=user, job_id=job_id)
