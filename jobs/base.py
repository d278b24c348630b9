"""What every job function needs: the Flask app (one per worker process), `@job`, `progress`.

`@job` runs a function inside the app context and, for a job submitted
through `backend.services.job_tracking.submit`, as a tracked run: progress
and failure recorded here, start and success by the worker or here (see
`backend.services.job_tracking` for who records what). Inside a job,
`progress(done, total, message)` reports progress, streamed to the owner as
`job.progress` events.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

from flask import Flask, current_app, has_app_context
from rq import get_current_job
from rq.job import Job as RQJob

from backend.services import job_tracking

P = ParamSpec("P")
R = TypeVar("R")


@functools.cache
def get_app() -> Flask:
    """Return this process's app, created from the environment on first use."""
    from backend import create_app

    return create_app()


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
    """Make `func` a job: app context, its own DB connection, and its record kept in step."""

    @functools.wraps(func)
    def run_in_app(*args: P.args, **kwargs: P.kwargs) -> R:
        current = get_current_job()
        with app_context(), job_tracking.tracking(current) as run:
            try:
                result = func(*args, **kwargs)
            except Exception as exc:
                if run is not None and current is not None:
                    run.failed(exc, will_retry=bool(current.retries_left))
                raise
            if run is not None:
                run.succeeded(result)
            return result

    return run_in_app


def progress(done: int, total: int | None = None, message: str = "") -> None:
    """Report the running job's progress (no-op outside a tracked job)."""
    run = job_tracking.current_run()
    if run is not None:
        run.report_progress(done, total, message)


def on_stopped(rq_job: RQJob, connection: Any, *args: Any, **kwargs: Any) -> None:
    """RQ callback: a stopped (cancelled) job is recorded as cancelled."""
    with app_context():
        ref = job_tracking.JobRef.of_rq_job(rq_job)
        if ref is not None:
            job_tracking.mark_cancelled(ref)
