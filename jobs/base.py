"""What every job needs: the Flask app (built once per worker process) and the job layer.

`@job` runs a function inside the app context. For jobs submitted through
`backend.services.jobs.submit` it also keeps their record in step: failed
(or queued again when RQ will retry), and cancelled when stopped. Start and
success are recorded by the worker (`jobs.worker`), or here when the job
runs under another RQ worker.
Inside a job, `progress(done, total, message)` reports progress, streamed
to the owner as `job.progress` events.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import structlog
from flask import Flask, current_app, has_app_context
from rq import get_current_job
from rq.job import Job as RQJob

from backend.errors import DomainError

if TYPE_CHECKING:
    from backend.services.job_runs import JobRef

P = ParamSpec("P")
R = TypeVar("R")

log = structlog.get_logger(__name__)
_app: Flask | None = None
_recorded_by_worker = False  # see `recorded_by_worker`


def get_app() -> Flask:
    """Return this process's app, creating it from the environment on first use."""
    global _app
    if _app is None:
        from backend import create_app

        _app = create_app()
    return _app


@contextmanager
def app_context() -> Iterator[Flask]:
    """Run the block inside an app context (the current one if already inside one)."""
    if has_app_context():
        yield current_app._get_current_object()  # type: ignore[attr-defined]
        return
    app = get_app()
    with app.app_context():
        yield app


def job(func: Callable[P, R]) -> Callable[P, R]:
    """Make `func` a job: app context, its own DB connection, and a record kept in step."""

    @functools.wraps(func)
    def run_in_app(*args: P.args, **kwargs: P.kwargs) -> R:
        from backend.services import job_runs

        with app_context():
            current = get_current_job()
            ref = tracked(current)
            by_worker = _recorded_by_worker
            if ref is not None:
                job_runs.begin(ref, started=not by_worker)
            try:
                result = func(*args, **kwargs)
            except Exception as exc:
                if ref is not None and current is not None:
                    job_runs.mark_failed(ref, _describe(exc), will_retry=_will_retry(current))
                raise
            if ref is not None and by_worker:
                job_runs.flush_progress(ref)  # the worker records the success
            elif ref is not None:
                job_runs.mark_succeeded(ref, result)
            return result

    return run_in_app


@contextmanager
def recorded_by_worker() -> Iterator[None]:
    """Within the block, the worker running jobs records their start and success itself.

    `jobs.worker` performs each job inside it: warm, in its own process,
    and batched. Under any other RQ worker a job records both on its own.
    """
    global _recorded_by_worker
    previous, _recorded_by_worker = _recorded_by_worker, True
    try:
        yield
    finally:
        _recorded_by_worker = previous


def progress(done: int, total: int | None = None, message: str = "") -> None:
    """Report the running job's progress (no-op outside a tracked job)."""
    from backend.services import job_runs

    ref = tracked(get_current_job())
    if ref is not None:
        job_runs.report_progress(ref, done, total, message)


def on_stopped(rq_job: RQJob, connection: Any, *args: Any, **kwargs: Any) -> None:
    """RQ callback: a stopped (cancelled) job is recorded as cancelled."""
    from backend.services import job_runs

    with app_context():
        ref = tracked(rq_job)
        if ref is not None:
            job_runs.mark_cancelled(ref)


def tracked(rq_job: RQJob | None) -> JobRef | None:
    """The record reference of an RQ job, or None for plain RQ jobs (and outside jobs)."""
    from backend.services.job_runs import JobRef

    return None if rq_job is None else JobRef.from_meta(rq_job.id, rq_job.meta)


def _will_retry(current: RQJob) -> bool:
    return bool(current.retries_left)


def _describe(exc: Exception) -> str:
    # What users see: the message, never a traceback (that goes to the worker log).
    if isinstance(exc, DomainError):
        return exc.message
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
