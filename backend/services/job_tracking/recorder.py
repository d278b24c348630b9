"""What a worker's long-lived process records for the tracked jobs it runs.

`jobs.worker`'s workers hold one `WorkerRecorder`. It writes a job's start
before the fork and hands the run to the work horse (which then writes only
progress and failure); after the horse it collects the job and, when due,
records the collected successes from what RQ stored and syncs the rows: at
most every `SYNC_EVERY_SECONDS` while jobs keep coming, at once when the
queues run dry, and when the worker stops. Its callers provide the app
context.
"""

from __future__ import annotations

import time

import structlog
from rq.job import Job as RQJob

from backend.models import utcnow
from backend.services.job_tracking import lifecycle
from backend.services.job_tracking.lifecycle import JobRef
from backend.services.job_tracking.runs import JobRun
from backend.services.job_tracking.sync import sync_rows

SYNC_EVERY_SECONDS = 0.25

log = structlog.get_logger(__name__)


class WorkerRecorder:
    """A worker's bookkeeping: starts recorded before the fork, successes and rows in batches."""

    def __init__(self, *, sync_every: float = SYNC_EVERY_SECONDS) -> None:
        """Start with nothing to record; sync at most every `sync_every` seconds under load."""
        self.sync_every = sync_every
        self.unsynced = False  # live states may be newer than their rows
        self._synced_at = time.monotonic()
        self._ran: list[JobRef] = []  # tracked jobs run since the last sync

    def start(self, rq_job: RQJob) -> JobRun | None:
        """Record that the worker takes `rq_job`; return its run (None for a plain RQ job).

        The start is written here, where the code is warm: in a freshly forked
        horse the same write costs three times as much. An error is logged,
        not raised: the job still runs, and its end is recorded all the same.
        """
        try:
            ref = JobRef.of_rq_job(rq_job)
            if ref is None:
                return None
            started_at = utcnow()
            lifecycle.mark_started(ref, at=started_at)
        except Exception:
            log.exception("job_start_not_recorded", job_id=rq_job.id)
            return None
        return JobRun(ref, recorded_by_worker=True, started_at=started_at)

    def ran(self, run: JobRun | None) -> None:
        """Note that a job's horse is done: its success is recorded with the next batch.

        A job whose start could not be recorded (`run` None) still leaves
        rows to sync: its horse may have written its ending.
        """
        if run is not None:
            self._ran.append(run.ref)
        self.unsynced = True

    @property
    def due(self) -> bool:
        """Whether the last sync is `sync_every` old while something waits to be recorded."""
        return self.unsynced and time.monotonic() - self._synced_at >= self.sync_every

    def sync(self) -> bool:
        """Record the successes of the jobs run since the last sync, then sync pending rows.

        Returns whether it worked. Errors are logged, never raised: the states
        stay pending for the next sync, and successes not recorded are found
        by the reaper.
        """
        self._synced_at = time.monotonic()
        ran, self._ran = self._ran, []
        try:
            if ran:
                lifecycle.record_finished(ran)
            sync_rows()
        except Exception:
            log.exception("job_sync_failed", unrecorded=[ref.id for ref in ran])
            return False
        self.unsynced = False
        return True
