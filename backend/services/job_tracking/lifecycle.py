"""Each step of a tracked job's life as one live-state write, with the event it publishes.

`mark_started`, `mark_requeued`, `mark_stop_requested`, `end` (and
`mark_cancelled`) and `record_successes` each make one Redis script call (`state.write`, or one
pipeline of them): the live state changes and the event goes out together,
and a job that already ended takes neither, so every job publishes exactly
one terminal event (`job.succeeded|failed|cancelled`). An event's data is
the job as `JobSchema` dumps it, the same fields `GET /jobs/{id}` returns.
Its values come from what the caller has at hand (`view`): the run's own
memory in the process that runs the job, else the live state over the row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis
import structlog
from rq.job import Job as RQJob
from rq.job import JobStatus
from rq.results import Result

from backend.channels import user_channel
from backend.models import Job, utcnow
from backend.redis_store import get_redis
from backend.schemas.jobs import JobSchema
from backend.services.job_tracking import state
from backend.services.job_tracking.sync import sync_rows

TRACKED = "tracked"  # RQ job meta flag: this job has a record
KIND, OWNER, CREATED = "kind", "owner", "created_at"  # RQ job meta: what its events need

View = dict[str, Any]  # Job field values, as far as they are known
Success = tuple["JobRef", Any, View | None]  # job, result, what is known of it (None: look up)

log = structlog.get_logger(__name__)
_SCHEMA = JobSchema()  # stateless once built; building one per event would cost more than the dump


@dataclass(frozen=True)
class JobRef:
    """Which job, of what kind, whose, and since when: enough to publish its events."""

    id: str
    kind: str
    owner_id: int | None
    created_at: datetime | None = None

    @classmethod
    def of(cls, record: Job) -> JobRef:
        """The reference for a stored record."""
        return cls(record.id, record.kind, record.user_id, record.created_at)

    @classmethod
    def of_rq_job(cls, rq_job: RQJob | None) -> JobRef | None:
        """The reference an RQ job's meta carries (read from its row for older jobs).

        Returns None for a plain RQ job, which has no record, and for None.
        """
        if rq_job is None or not rq_job.meta.get(TRACKED):
            return None
        meta = rq_job.meta
        if CREATED in meta:
            created = datetime.fromisoformat(meta[CREATED])
            return cls(rq_job.id, str(meta[KIND]), meta.get(OWNER), created)
        record = Job.get_or_none(Job.id == rq_job.id)
        return None if record is None else cls.of(record)

    def meta(self) -> dict[str, Any]:
        """The RQ job meta that carries this reference (`of_rq_job` reads it back)."""
        created = self.created_at.isoformat() if self.created_at else None
        return {TRACKED: True, KIND: self.kind, OWNER: self.owner_id, CREATED: created}


def mark_started(ref: JobRef, *, at: datetime | None = None) -> bool:
    """Record that a worker takes the job now; False if it already ended (say, cancelled)."""
    now = at or utcnow()
    return state.write(
        ref.id, {"status": "started", "started_at": now, "updated_at": now, "error": None}
    )


def mark_requeued(job_id: str, *, error: str | None = None) -> bool:
    """Record that the job waits on a queue again (a retry, or the reaper's requeue); no event."""
    values: dict[str, Any] = {"status": "queued", "updated_at": utcnow()}
    if error is not None:
        values["error"] = error
    return state.write(job_id, values)


def mark_stop_requested(job_id: str) -> bool:
    """Record that a stop was asked for while the job runs (its ending event then says so)."""
    return state.write(job_id, {"cancel_requested": utcnow(), "updated_at": utcnow()})


def record_successes(successes: list[Success]) -> list[bool]:
    """Record each job's result and publish `job.succeeded`, in one Redis round trip.

    Returns, per job, whether it was recorded (False: it had already ended).
    The rows follow with the next sync.
    """
    writes = [_ending(ref, "succeeded", view, result=result) for ref, result, view in successes]
    return state.write_many(writes) if writes else []


def record_finished(refs: list[JobRef]) -> int:
    """Record those of `refs` that RQ has finished as succeeded, with the results RQ stored.

    Their worker calls this once their work horses are done, and the reaper
    for a job whose worker died before it could. Returns how many RQ had
    finished. Raises `redis.RedisError`.
    """
    connection = get_redis()
    pipe = connection.pipeline(transaction=False)
    for ref in refs:
        pipe.hget(RQJob.key_for(ref.id), "status")
        pipe.xrevrange(Result.get_key(ref.id), "+", "-", count=1)
        pipe.hgetall(state.key(ref.id))
    replies = pipe.execute()
    successes: list[Success] = []
    for index, ref in enumerate(refs):
        status, latest, live = replies[3 * index : 3 * index + 3]
        if status == JobStatus.FINISHED.value.encode():
            view = state.decode(live) or None
            successes.append((ref, _stored_result(ref.id, latest, connection), view))
    record_successes(successes)
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


def mark_cancelled(ref: JobRef) -> bool:
    """Record a cancellation, row included, and publish `job.cancelled`."""
    return end(ref, "cancelled", sync_now=True)


def end(
    ref: JobRef,
    status: str,
    *,
    error: str | None = None,
    view: View | None = None,
    sync_now: bool = False,
) -> bool:
    """End the job with terminal `status` (`failed` or `cancelled`) and publish `job.<status>`.

    `view` is what the caller knows of the job (else it is read back). With
    `sync_now` the row is brought up at once (for endings outside a worker,
    which syncs its rows itself). Returns False (nothing written or sent)
    when it had already ended.
    """
    ended = state.write(*_ending(ref, status, view, error=error))
    if ended and sync_now:
        sync_rows([ref.id])
    return ended


def _ending(
    ref: JobRef, status: str, view: View | None, *, result: Any = None, error: str | None = None
) -> state.Write:
    now = utcnow()
    values: dict[str, Any] = {"status": status, "finished_at": now, "updated_at": now}
    values["error"] = error
    if status == "succeeded":
        values["result"] = result
    known = view if view is not None else stored_view(ref.id)
    return ref.id, values, event(ref, f"job.{status}", {**known, **values, "result": result})


def stored_view(job_id: str) -> View:
    """What is recorded of a job: its row with the live state laid over it."""
    record = Job.get_or_none(Job.id == job_id)
    view: View = dict(record.__data__) if record is not None else {}
    view.update(state.read(job_id))
    return view


def event(ref: JobRef, type_: str, view: View) -> state.Event | None:
    """The event `type_` about the job, for its owner (None for a job nobody owns)."""
    if ref.owner_id is None:
        return None
    known = {"id": ref.id, "kind": ref.kind, "created_at": ref.created_at, **view}
    return (user_channel(ref.owner_id), type_, _SCHEMA.dump(Job(**known)))
