"""Maintenance jobs: checks and clean-ups run by workers or on a schedule."""

from __future__ import annotations

import os
import socket

from backend import spool
from backend.services import health, idempotency
from backend.services import jobs as job_records
from jobs.base import job


@job
def check_health() -> dict[str, str]:
    """Check that this worker reaches the same database and Redis as the web tier.

    Returns the readiness report with the worker's host and pid; raises
    `backend.errors.ServiceUnavailable` (failing the job) when either is down.
    """
    report = health.check_readiness()
    return {**report, "host": socket.gethostname(), "pid": str(os.getpid())}


@job
def purge_idempotency_keys() -> dict[str, int]:
    """Delete `Idempotency-Key` records older than 24 h, so their keys can be used again."""
    return {"purged": idempotency.purge_expired()}


@job
def reap_abandoned_jobs() -> dict[str, int]:
    """Fail (or requeue, per kind) jobs whose worker died, and drop old spool files."""
    counts = job_records.reap_abandoned()
    counts["spool_files_removed"] = spool.purge(24 * 3600)
    return counts
