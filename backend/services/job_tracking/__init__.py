"""Job tracking: durable job records kept in step with RQ, with live state and events.

A tracked job's life, and who records each step:

- **queued**: `submit` (a use case) writes the `Job` row and puts the job on
  a queue by its function's dotted path; the RQ job's meta carries who owns
  it and what kind it is (`JobRef`).
- **started**: the worker takes it. `jobs.worker`'s workers record the start
  in their long-lived process just before the fork (`WorkerRecorder.start`)
  and hand the run to the job (`JobRun`, `recorded_by_worker=True`); under
  any other RQ worker the job's `@job` decorator opens its own run, which
  records the start itself (`tracking`).
- **progress**: the job calls `jobs.base.progress`; its run writes it and
  publishes `job.progress`, at most every 0.1 s (the last update is never
  lost).
- **succeeded**: under `jobs.worker`, its worker records the result RQ
  stored once the horse is done, in batches with the row sync (at once when
  no work waits, else within `SYNC_EVERY_SECONDS`); otherwise the run
  records it as the job returns.
- **failed**: the run, which has the exception, records it (or `queued`
  again when RQ will retry); the reaper fails a started job whose worker died.
- **cancelled**: `cancel` ends a queued job at once; a running one is asked
  to stop, and RQ's stop callback (`jobs.base.on_stopped`) records it.
- **retried**: `retry` (`retries`) submits a failed or cancelled job of a
  retryable kind again as a new job with the same arguments.

Every step is one write of the job's live state in Redis (`state`) together
with its event on `backend.channels.user_channel(owner)`, whose data is the
job as `JobSchema` dumps it. A state that has ended takes no more writes,
so every job publishes exactly one terminal event. `Job` rows follow in
batches (`sync_rows`), and reads lay the live state over rows not yet synced.
"""

from backend.services.job_tracking.lifecycle import (
    JobRef,
    mark_cancelled,
    mark_started,
    record_finished,
)
from backend.services.job_tracking.reaper import ABANDONED_MESSAGE, reap_abandoned
from backend.services.job_tracking.recorder import SYNC_EVERY_SECONDS, WorkerRecorder
from backend.services.job_tracking.records import (
    KINDS,
    JobKind,
    cancel,
    get_job,
    list_jobs,
    submit,
)
from backend.services.job_tracking.retries import retry
from backend.services.job_tracking.runs import JobRun, current_run, performing, tracking
from backend.services.job_tracking.sync import sync_rows

__all__ = [
    "ABANDONED_MESSAGE",
    "KINDS",
    "SYNC_EVERY_SECONDS",
    "JobKind",
    "JobRef",
    "JobRun",
    "WorkerRecorder",
    "cancel",
    "current_run",
    "get_job",
    "list_jobs",
    "mark_cancelled",
    "mark_started",
    "performing",
    "reap_abandoned",
    "record_finished",
    "retry",
    "submit",
    "sync_rows",
    "tracking",
]
