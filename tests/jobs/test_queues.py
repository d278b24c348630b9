"""The enqueue helper and real RQ workers running jobs from `jobs/`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from rq import Retry
from rq.job import JobStatus
from rq.registry import ScheduledJobRegistry

from backend.queues import QUEUE_NAMES, enqueue, get_queue, queue_depths
from jobs import maintenance


def test_job_enqueued_through_the_helper_is_run_by_a_real_worker(
    app: Flask, run_worker: Callable[[], bool]
) -> None:
    job = enqueue(maintenance.check_health, queue="high", timeout=30)
    assert queue_depths() == {"high": 1, "default": 0, "low": 0}
    assert run_worker()
    job.refresh()
    assert job.get_status() == JobStatus.FINISHED
    result = job.return_value()
    assert result is not None
    assert result["database"] == "ok"
    assert result["redis"] == "ok"
    assert queue_depths() == {"high": 0, "default": 0, "low": 0}


def test_failing_job_is_retried_then_ends_failed_with_its_error(
    app: Flask, make_app: Callable[..., Flask], run_worker: Callable[[], bool]
) -> None:
    broken = make_app(DATABASE_URL="postgresql://nobody@127.0.0.1:1/none")
    with broken.app_context():
        job = enqueue(maintenance.check_health, retry=Retry(max=1))
        run_worker()
        job.refresh()
        assert job.get_status() == JobStatus.FAILED
        assert job.retries_left == 0
        result = job.latest_result()
        assert result is not None
        assert "ServiceUnavailable" in (result.exc_string or "")


def test_delayed_and_timed_jobs_wait_in_the_scheduled_registry(app: Flask) -> None:
    later = enqueue(maintenance.check_health, delay=timedelta(minutes=5))
    at = enqueue(maintenance.check_health, at=datetime.now(UTC) + timedelta(hours=1), timeout=9)
    registry = ScheduledJobRegistry(queue=get_queue("default"))
    assert set(registry.get_job_ids()) == {later.id, at.id}
    assert at.timeout == 9
    assert queue_depths()["default"] == 0


def test_unknown_queue_is_refused(app: Flask) -> None:
    with pytest.raises(ValueError, match="unknown queue 'urgent'"):
        enqueue(maintenance.check_health, queue="urgent")


def test_queues_are_named_by_priority() -> None:
    assert QUEUE_NAMES == ("high", "default", "low")


def test_the_cron_schedule_loads_and_names_real_jobs() -> None:
    from rq import cron

    import jobs.schedule  # noqa: F401 - registers the jobs

    registered = {entry["func"].__name__ for entry in cron._job_data_registry}
    assert {"check_health", "purge_idempotency_keys"} <= registered


def test_purge_job_runs_on_a_worker(app: Flask, run_worker: Callable[[], bool]) -> None:
    job = enqueue(maintenance.purge_idempotency_keys)
    run_worker()
    assert job.return_value() == {"purged": 0}
