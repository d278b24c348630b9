"""A tracked job's lifecycle as its worker reports it: started, progress, and how it ended.

The worker's parent process calls `mark_started` before it forks the job and,
after, `record_successes` for a batch of finished jobs (through
`backend.services.jobs.record_finished`); the job itself (through `jobs.base`)
calls `begin`, `report_progress`, `flush_progress`, and `mark_failed` when it
raises (under another RQ worker it also records its own start and success);
RQ's stop callback, the cancel endpoint and the reaper call `mark_cancelled` /
`end`. Each write is one Redis script call (`job_state.write`, or one
pipeline of them): the live state changes and its event goes out together,
and a job that already ended takes neither, so every job publishes exactly
one terminal event (`job.succeeded|failed|cancelled`). `Job` rows follow in
batches (`sync_records`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from backend.models import Job, progress_of, utcnow
from backend.services import job_state

TRACKED = "tracked"  # RQ job meta flag: this job has a record
KIND, OWNER = "kind", "owner"  # RQ job meta: what events about the job need
PROGRESS_EVERY_SECONDS = 0.1  # at most 10 job.progress events per second per job

Progress = tuple[int, int | None, str]  # done, total, message
Success = tuple["JobRef", Any, Progress | None]  # job, result, its last progress if known

_last_sent: dict[str, float] = {}
_held_back: dict[str, Progress] = {}
_progress: dict[str, Progress] = {}  # the last progress written by this process, per job


@dataclass(frozen=True)
class JobRef:
    """Who a job belongs to and what kind it is: enough to publish its events."""

    id: str
    kind: str
    owner_id: int | None

    @classmethod
    def of(cls, record: Job) -> JobRef:
        """The reference for a stored record."""
        return cls(record.id, record.kind, record.user_id)

    @classmethod
    def from_meta(cls, job_id: str, meta: dict[str, Any]) -> JobRef | None:
        """The reference an RQ job's meta carries (read from its row for older jobs).

        Returns None for a plain RQ job, which has no record.
        """
        if not meta.get(TRACKED):
            return None
        if KIND in meta:
            return cls(job_id, str(meta[KIND]), meta.get(OWNER))
        record = Job.get_or_none(Job.id == job_id)
        return None if record is None else cls.of(record)


def mark_started(ref: JobRef) -> bool:
    """Record that a worker takes the job now; False if it already ended (say, cancelled)."""
    now = utcnow()
    return job_state.write(
        ref.id, {"status": "started", "started_at": now, "updated_at": now, "error": None}
    )


def begin(ref: JobRef, *, started: bool = False) -> None:
    """Note that this process runs the job from the start (its progress is all known here).

    With `started`, also record the start (when no worker did: `mark_started`).
    """
    _progress[ref.id] = (0, None, "")
    if started:
        mark_started(ref)


def report_progress(ref: JobRef, done: int, total: int | None, message: str) -> None:
    """Record progress and publish `job.progress`, at most every 0.1 s per job.

    An update inside that window is held back, not lost: the next one that
    goes out, or `flush_progress` when the job ends, carries it.
    """
    now = time.monotonic()
    last_sent = _last_sent.get(ref.id)
    if last_sent is not None and now - last_sent < PROGRESS_EVERY_SECONDS:
        _held_back[ref.id] = (done, total, message[:300])
        return
    _last_sent[ref.id] = now
    _held_back.pop(ref.id, None)
    _write_progress(ref, (done, total, message[:300]))


def flush_progress(ref: JobRef) -> None:
    """Write and publish the last progress update if it was held back."""
    _last_sent.pop(ref.id, None)
    held = _held_back.pop(ref.id, None)
    if held is not None:
        _write_progress(ref, held)


def mark_succeeded(ref: JobRef, result: Any, *, progress: Progress | None = None) -> None:
    """Record the result and publish `job.succeeded` (the row follows with the next sync).

    `progress` is the job's last progress when the caller has it at hand.
    """
    record_successes([(ref, result, progress)])


def record_successes(successes: list[Success]) -> list[bool]:
    """`mark_succeeded` for several jobs in one Redis round trip.

    Returns, per job, whether it was recorded (False: it had already ended).
    """
    writes = []
    for ref, result, progress in successes:
        flush_progress(ref)
        writes.append(_ending(ref, "succeeded", result=result, error=None, progress=progress))
    return job_state.write_many(writes) if writes else []


def mark_failed(ref: JobRef, error: str, *, will_retry: bool) -> None:
    """Record a failure: back to `queued` if RQ will retry it, else `failed` with an event."""
    flush_progress(ref)
    if will_retry:
        _progress.pop(ref.id, None)
        job_state.write(ref.id, {"status": "queued", "error": error[:2000], "updated_at": utcnow()})
        return
    end(ref, "failed", error=error[:2000])


def mark_cancelled(ref: JobRef) -> None:
    """Record a cancellation, row included, and publish `job.cancelled`."""
    end(ref, "cancelled", sync_now=True)


def end(
    ref: JobRef,
    status: str,
    *,
    result: Any = None,
    error: str | None = None,
    sync_now: bool = False,
    progress: Progress | None = None,
) -> bool:
    """End the job with a terminal `status` and publish `job.<status>`.

    With `sync_now` the row is brought up at once (for endings outside a
    worker, which syncs its rows itself). Returns False (nothing written or
    sent) when it had already ended.
    """
    ended = job_state.write(*_ending(ref, status, result=result, error=error, progress=progress))
    if ended and sync_now:
        job_state.sync([ref.id])
    return ended


def _ending(
    ref: JobRef, status: str, *, result: Any, error: str | None, progress: Progress | None
) -> job_state.Write:
    now = utcnow()
    progress = _progress.pop(ref.id, None) or progress or _stored_progress(ref.id)
    values = {"status": status, "finished_at": now, "updated_at": now, "error": error}
    if status == "succeeded":
        values["result"] = result
    payload = {"id": ref.id, "kind": ref.kind, "status": status,
               "progress": progress_of(*progress), "result": result, "error": error}  # fmt: skip
    return ref.id, values, _event(ref, f"job.{status}", payload)


def sync_records() -> int:
    """Bring every `Job` row up to its live state; return how many changed.

    Run by workers between jobs and by the reaper. Raises on database or
    Redis errors (the states stay pending).
    """
    return job_state.sync()


def _write_progress(ref: JobRef, progress: Progress) -> None:
    _progress[ref.id] = progress
    done, total, message = progress
    values = {"progress_done": done, "progress_total": total, "progress_message": message,
              "updated_at": utcnow()}  # fmt: skip
    payload = {"id": ref.id, "kind": ref.kind, "status": "started",
               "progress": progress_of(*progress), "result": None, "error": None}  # fmt: skip
    job_state.write(ref.id, values, _event(ref, "job.progress", payload))


def progress_in(state: dict[str, Any]) -> Progress | None:
    """The progress a live state (`job_state.read`) holds; None for no state."""
    if not state:
        return None
    return (
        state.get("progress_done", 0),
        state.get("progress_total"),
        state.get("progress_message", ""),
    )


def _stored_progress(job_id: str) -> Progress:
    """The progress as last recorded, for jobs ended outside the process that ran them."""
    progress = progress_in(job_state.read(job_id))
    if progress is not None:
        return progress
    record = Job.get_or_none(Job.id == job_id)
    if record is None:
        return (0, None, "")
    return (record.progress_done, record.progress_total, record.progress_message)


def _event(ref: JobRef, type_: str, payload: dict[str, Any]) -> job_state.Event | None:
    if ref.owner_id is None:
        return None
    return (f"user:{ref.owner_id}", type_, payload)
