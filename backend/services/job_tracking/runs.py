"""One run of a tracked job, held by the process that performs it.

A `JobRun` knows who records its start and success (`recorded_by_worker`):
`jobs.worker`'s workers open the run themselves, having written the start
before they fork, and record the success after, in batches; under any other
RQ worker the job's decorator opens its own run, which records both.
Either way the run writes progress (throttled) and a failure, and keeps what
it knows of the job, so its events need no read back.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Any

from rq.job import Job as RQJob

from backend.errors import DomainError
from backend.models import utcnow
from backend.services.job_tracking import lifecycle, state
from backend.services.job_tracking.lifecycle import JobRef, View

PROGRESS_EVERY_SECONDS = 0.1  # at most 10 job.progress events per second per job

Progress = tuple[int, int | None, str]  # done, total, message

# The run being performed in this context, as RQ keeps its current job
# (`rq.get_current_job`): set only while a job runs, so `progress()` finds it.
_performing: ContextVar[JobRun | None] = ContextVar("job_run", default=None)


class JobRun:
    """A tracked job as the process performing it sees it: progress, and who records what."""

    def __init__(
        self, ref: JobRef, *, recorded_by_worker: bool, started_at: datetime | None = None
    ) -> None:
        """Hold the run of `ref`; `recorded_by_worker`: its worker records start and success."""
        self.ref = ref
        self.recorded_by_worker = recorded_by_worker
        self.started_at = started_at
        self.progress: Progress = (0, None, "")
        self._sent_at: float | None = None
        self._held_back: Progress | None = None

    def begin(self) -> None:
        """Record the start, unless the worker did (before it forked)."""
        if not self.recorded_by_worker:
            self.started_at = utcnow()
            lifecycle.mark_started(self.ref, at=self.started_at)

    def report_progress(self, done: int, total: int | None, message: str) -> None:
        """Record progress and publish `job.progress`, at most every 0.1 s.

        An update inside that window is held back, not lost: the next one that
        goes out, or the job's ending, carries it.
        """
        update = (done, total, message[:300])
        now = time.monotonic()
        if self._sent_at is not None and now - self._sent_at < PROGRESS_EVERY_SECONDS:
            self._held_back = update
            return
        self._sent_at = now
        self._held_back = None
        self._write_progress(update)

    def flush_progress(self) -> None:
        """Write and publish the last progress update if it was held back."""
        held, self._held_back = self._held_back, None
        self._sent_at = None
        if held is not None:
            self._write_progress(held)

    def succeeded(self, result: Any) -> None:
        """The job returned `result`: record it, unless the worker does (after the horse)."""
        self.flush_progress()
        if not self.recorded_by_worker:
            lifecycle.record_successes([(self.ref, result, self.view("started"))])

    def failed(self, exc: Exception, *, will_retry: bool) -> None:
        """The job raised `exc`: back to `queued` if RQ will retry it, else `failed` with an event.

        The error users see is the exception's message, never a traceback.
        """
        self.flush_progress()
        error = describe(exc)[:2000]
        if will_retry:
            self.progress = (0, None, "")
            lifecycle.mark_requeued(self.ref.id, error=error)
        else:
            lifecycle.end(self.ref, "failed", error=error, view=self.view("started"))

    def view(self, status: str) -> View:
        """What this run knows of its job, as Job field values."""
        done, total, message = self.progress
        return {"status": status, "started_at": self.started_at, "progress_done": done,
                "progress_total": total, "progress_message": message}  # fmt: skip

    def _write_progress(self, update: Progress) -> None:
        self.progress = update
        done, total, message = update
        values = {"progress_done": done, "progress_total": total, "progress_message": message,
                  "updated_at": utcnow()}  # fmt: skip
        state.write(
            self.ref.id, values, lifecycle.event(self.ref, "job.progress", self.view("started"))
        )


def describe(exc: Exception) -> str:
    """What users see of a job's exception: its message (a domain error's alone), no traceback."""
    if isinstance(exc, DomainError):
        return exc.message
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


@contextmanager
def performing(run: JobRun | None) -> Iterator[JobRun | None]:
    """Within the block, `run` is the run being performed here (`current_run`)."""
    token = _performing.set(run)
    try:
        yield run
    finally:
        _performing.reset(token)


def current_run() -> JobRun | None:
    """The tracked run being performed in this context, or None (a plain job, or no job)."""
    return _performing.get()


@contextmanager
def tracking(rq_job: RQJob | None) -> Iterator[JobRun | None]:
    """Run the block as `rq_job`'s run: the one its worker opened, or one of its own.

    Yields None for a plain RQ job (no record) and outside jobs. A run of its
    own records its start here.
    """
    run = current_run()
    if rq_job is None or run is None or run.ref.id != rq_job.id:
        ref = JobRef.of_rq_job(rq_job)
        run = None if ref is None else JobRun(ref, recorded_by_worker=False)
    if run is not None:
        run.begin()
    with performing(run):
        yield run
