"""RQ queues and the one helper services use to put work on them.

Three named queues, drained in priority order by `rq worker high default low`.
Job functions live in modules under `jobs/`. Blueprints never enqueue: they
call a service, and the service calls `enqueue` (after its transaction
commits, so the job sees the committed rows). Services name the job by its
dotted path (`"jobs.mail.deliver_mail"`), which the worker imports: the
`jobs` package sits above the services and they never import it.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from rq import Callback, Queue, Retry
from rq.job import Job
from rq.types import FunctionReferenceType

from backend.redis_store import get_redis

QUEUE_NAMES = ("high", "default", "low")


def get_queue(name: str = "default") -> Queue:
    """Return the named queue on the app's Redis. Raises `ValueError` for unknown names."""
    if name not in QUEUE_NAMES:
        raise ValueError(f"unknown queue {name!r}; expected one of {QUEUE_NAMES}")
    return Queue(name, connection=get_redis())


def enqueue(
    func: FunctionReferenceType,
    *args: Any,
    queue: str = "default",
    timeout: int | None = None,
    retry: Retry | None = None,
    at: datetime | None = None,
    delay: timedelta | None = None,
    job_id: str | None = None,
    on_stopped: Callback | None = None,
    meta: dict[str, Any] | None = None,
    **kwargs: Any,
) -> Job:
    """Enqueue `func(*args, **kwargs)` on `queue` and return the RQ job.

    `func` is a job function from a module under `jobs/`, or (from a
    service) its dotted name, `"jobs.<topic>.<function>"`. `at` or `delay`
    schedule it for later (run by the worker's scheduler); `retry` retries
    transient failures; `timeout` (seconds) bounds one run. Raises
    `ValueError` for an unknown queue.
    """
    target = get_queue(queue)
    options: dict[str, Any] = {
        "timeout": timeout,
        "retry": retry,
        "job_id": job_id,
        "on_stopped": on_stopped,
        "meta": meta,
    }
    if at is not None:
        return target.enqueue_at(at, func, *args, **kwargs, **_rq_options(options))
    if delay is not None:
        return target.enqueue_in(delay, func, *args, **kwargs, **_rq_options(options))
    return target.enqueue_call(func, args=args, kwargs=kwargs, **options)


def _rq_options(options: dict[str, Any]) -> dict[str, Any]:
    # enqueue_at/enqueue_in take RQ's options as reserved keyword arguments.
    renamed = {"job_timeout" if k == "timeout" else k: v for k, v in options.items()}
    return {k: v for k, v in renamed.items() if v is not None}


def queue_depths() -> dict[str, int]:
    """Return the number of waiting jobs per queue."""
    return {name: get_queue(name).count for name in QUEUE_NAMES}
