"""Retrying a job: a failed or cancelled job of a retryable kind runs again as a new job.

The new job has the same kind, owner, function and arguments (kept on the
`Job` row by `submit`) and names the job it retries (`retry_of`); the old one
names its retry (`retried_as`), set by one conditional UPDATE, so a job is
retried once (its retry, should it fail, may be retried in turn). A spooled
input (an import's CSV) is copied for the new job, whose age then starts
again; the old job's copy is deleted once the new job is queued.

A job may be retried for `JOBS_RETRY_WINDOW_HOURS` (24) after it ended, and
while its spooled input is still there (the cron's reaper purges inputs past
that window).
"""

from __future__ import annotations

import contextlib
import uuid
from datetime import timedelta

from flask import current_app

from backend.errors import Conflict
from backend.models import Job, User, utcnow
from backend.services.job_tracking.records import JobKind, get_job, kind_of, submit
from backend.services.job_tracking.sync import sync_rows
from backend.spool import get_spool

RETRYABLE_STATUSES = ("failed", "cancelled")


def retry(*, user: User, job_id: str) -> Job:
    """Run a failed or cancelled job again as a new job (owner or admin); return the new job.

    Raises `NotFound` (someone else's job), or `Conflict` (`job_not_retryable`):
    the job did not fail and was not cancelled, its kind is not retryable, it was
    retried already, it ended longer ago than the retry window, or its input is gone.
    """
    record = get_job(user=user, job_id=job_id)
    spec = kind_of(record.kind)
    func = _check(record, spec)
    sync_rows([job_id])  # the row may lag the live state: the claim below reads the row
    new_id = uuid.uuid4().hex
    claim = Job.update(retried_as=new_id).where(
        (Job.id == job_id) & Job.retried_as.is_null() & Job.status.in_(RETRYABLE_STATUSES)
    )
    if claim.execute() != 1:
        raise _not_retryable("This job was just retried, or it is no longer failed or cancelled.")
    args, spooled = list(record.args), None
    try:
        if spec.spooled_input is not None:
            spooled = args[spec.spooled_input] = _copy_input(args[spec.spooled_input])
        new = submit(
            owner=record.user, kind=record.kind, func=func, args=tuple(args),
            job_id=new_id, retry_of=record.id,
        )  # fmt: skip
    except BaseException:
        Job.update(retried_as=None).where((Job.id == job_id) & (Job.retried_as == new_id)).execute()
        if spooled is not None:
            get_spool().delete(spooled)
        raise
    if spec.spooled_input is not None:
        with contextlib.suppress(OSError):  # the copy is what counts; leftovers are purged
            get_spool().delete(record.args[spec.spooled_input])
    return new


def _check(record: Job, spec: JobKind) -> str:
    """Return the job's function; raise `Conflict` (`job_not_retryable`) if it cannot rerun."""
    if not spec.retryable or record.func is None or record.args is None:
        raise _not_retryable(f"Jobs of kind {record.kind!r} cannot be retried.")
    if record.status not in RETRYABLE_STATUSES:
        raise _not_retryable(f"Only a failed or cancelled job can be retried; this one is "
                             f"{record.status}.")  # fmt: skip
    if record.retried_as is not None:
        raise _not_retryable(f"This job was retried already, as job {record.retried_as}.")
    window = timedelta(hours=int(current_app.config["JOBS_RETRY_WINDOW_HOURS"]))
    if record.finished_at is not None and record.finished_at < utcnow() - window:
        raise _not_retryable("This job ended too long ago to be retried.")
    return str(record.func)


def _copy_input(name: str) -> str:
    try:
        return get_spool().copy(name)
    except (FileNotFoundError, ValueError) as exc:
        raise _not_retryable("This job's input is no longer kept; start it anew.") from exc


def _not_retryable(message: str) -> Conflict:
    return Conflict(message, error="job_not_retryable")
