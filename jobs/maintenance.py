"""Maintenance jobs: checks and clean-ups run by workers or on a schedule."""

from __future__ import annotations

import os
import socket
from datetime import timedelta

from flask import current_app

from backend import spool
from backend.services import (
    health,
    idempotency,
    job_tracking,
    notifications,
    sessions,
    tokens,
    upload_urls,
)
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
    """Fail (or requeue, per kind) jobs whose worker died; drop inputs past the retry window.

    Spooled inputs (an import's CSV, kept while its job may be retried) older
    than `JOBS_RETRY_WINDOW_HOURS` are deleted.
    """
    counts = job_tracking.reap_abandoned()
    window = int(current_app.config["JOBS_RETRY_WINDOW_HOURS"]) * 3600
    counts["spool_files_removed"] = spool.purge(window)
    return counts


@job
def purge_old_records() -> dict[str, int]:
    """Delete spent or expired one-time tokens and upload URLs, ended sessions, read notifications.

    Ages come from `PURGE_TOKENS_AFTER_DAYS` (7, upload URLs too),
    `PURGE_SESSIONS_AFTER_DAYS` (30) and `PURGE_NOTIFICATIONS_AFTER_DAYS` (90).
    """
    config = current_app.config
    return {
        "tokens": tokens.purge_spent(older_than=timedelta(days=config["PURGE_TOKENS_AFTER_DAYS"])),
        "upload_urls": upload_urls.purge_expired(
            older_than=timedelta(days=config["PURGE_TOKENS_AFTER_DAYS"])
        ),
        "sessions": sessions.purge_ended(
            older_than=timedelta(days=config["PURGE_SESSIONS_AFTER_DAYS"])
        ),
        "notifications": notifications.purge_read(
            older_than=timedelta(days=config["PURGE_NOTIFICATIONS_AFTER_DAYS"])
        ),
    }
