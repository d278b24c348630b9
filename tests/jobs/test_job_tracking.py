"""Job tracking: submit by dotted name, who records what under which worker, one event shape."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import rq
from flask import Flask
from flask.testing import FlaskClient
from rq.job import Job as RQJob
from rq.job import JobStatus

from backend.channels import user_channel
from backend.db import db
from backend.models import Job
from backend.redis_store import get_redis
from backend.services import job_tracking
from backend.services.job_tracking import JobRef
from backend.services.job_tracking.state import read
from jobs.base import job, on_stopped, progress
from jobs.worker import SimpleWorker
from tests.support.accounts import login, make_user
from tests.support.helpers import json_body, stream_events

API = "/api/v1"
HERE = __name__


@job
def who_records() -> dict[str, Any]:
    """Say who records this run's start and success, and whether its start is already written."""
    run = job_tracking.current_run()
    assert run is not None
    return {"by_worker": run.recorded_by_worker, "status_inside": read(run.ref.id)["status"]}


@job
def plain_progress() -> str:
    """A job run without a record: progress is a no-op."""
    progress(1, 2, "half")
    return "done" if job_tracking.current_run() is None else "tracked"


@pytest.fixture
def ada(client: FlaskClient) -> dict[str, Any]:
    user = make_user("ada@example.test")
    return {"user": user, "headers": login(client, "ada@example.test").headers}


def test_a_job_function_that_does_not_exist_fails_at_submit_and_records_nothing(
    app: Flask, ada: dict[str, Any]
) -> None:
    for missing in ("jobs.products.no_such_job", "jobs.no_such_module.run", "no_dots"):
        with pytest.raises(LookupError, match="no job function"):
            job_tracking.submit(owner=ada["user"], kind="count", func=missing)
    with pytest.raises(LookupError, match="no job function"):
        job_tracking.submit(owner=ada["user"], kind="count", func="jobs.products.Path")  # a class
    assert Job.select().count() == 0
    assert rq.Queue("default", connection=get_redis()).count == 0


def test_the_projects_worker_records_the_start_before_the_job_runs(
    app: Flask, ada: dict[str, Any], run_worker: Callable[[], bool]
) -> None:
    record = job_tracking.submit(owner=ada["user"], kind="who", func=f"{HERE}.who_records")
    run_worker()
    final = Job.get_by_id(record.id)
    assert final.status == "succeeded"
    assert final.result == {"by_worker": True, "status_inside": "started"}


def test_under_a_plain_rq_worker_the_job_records_start_and_success_itself(
    app: Flask, ada: dict[str, Any]
) -> None:
    record = job_tracking.submit(owner=ada["user"], kind="who", func=f"{HERE}.who_records")
    rq.SimpleWorker(["default"], connection=get_redis()).work(burst=True, with_scheduler=False)
    job_tracking.sync_rows()
    final = Job.get_by_id(record.id)
    assert (final.status, final.result) == (
        "succeeded", {"by_worker": False, "status_inside": "started"},
    )  # fmt: skip
    assert final.started_at is not None


def test_a_plain_rq_job_has_no_run_even_under_the_projects_worker(
    app: Flask, run_worker: Callable[[], bool]
) -> None:
    from backend.queues import enqueue

    plain = enqueue(f"{HERE}.plain_progress")
    run_worker()
    assert plain.return_value() == "done"
    assert Job.select().count() == 0


def test_job_events_carry_the_job_as_get_returns_it(
    client: FlaskClient, ada: dict[str, Any], run_worker: Callable[[], bool]
) -> None:
    record = job_tracking.submit(
        owner=ada["user"], kind="count", func="tests.support.sample_jobs.count_to", args=(3,)
    )
    run_worker()
    events = stream_events(user_channel(ada["user"].id))
    kind, data = events[-1]
    shown = json_body(client.get(f"{API}/jobs/{record.id}", headers=ada["headers"]))
    assert kind == "job.succeeded"
    assert data == shown
    progressed = next(d for k, d in events if k == "job.progress")
    assert set(progressed) == set(shown)
    assert (progressed["status"], progressed["started_at"]) == ("started", shown["started_at"])
    assert progressed["created_at"] == shown["created_at"]


def test_a_stopped_job_ends_cancelled_and_its_event_says_a_stop_was_asked_for(
    client: FlaskClient, ada: dict[str, Any]
) -> None:
    record = job_tracking.submit(
        owner=ada["user"], kind="count", func="tests.support.sample_jobs.count_to", args=(3,)
    )
    rq_job = RQJob.fetch(record.id, connection=get_redis())
    rq_job.set_status(JobStatus.STARTED)  # as a worker running it would
    rq_job.worker_name = "busy-worker"
    rq_job.save()
    job_tracking.mark_started(JobRef.of(record))
    asked = json_body(client.post(f"{API}/jobs/{record.id}/cancel", headers=ada["headers"]))
    assert (asked["status"], asked["cancel_requested"]) == ("started", True)
    on_stopped(rq_job, get_redis())  # RQ's stop callback, once the worker stopped the horse
    kind, data = stream_events(user_channel(ada["user"].id))[-1]
    shown = json_body(client.get(f"{API}/jobs/{record.id}", headers=ada["headers"]))
    assert (kind, data["status"], data["cancel_requested"]) == ("job.cancelled", "cancelled", True)
    assert data == shown


def test_jobs_queued_before_their_meta_carried_a_creation_time_are_still_tracked(
    app: Flask, ada: dict[str, Any]
) -> None:
    record = job_tracking.submit(
        owner=ada["user"], kind="count", func="tests.support.sample_jobs.count_to", args=(1,)
    )
    rq_job = RQJob.fetch(record.id, connection=get_redis())
    rq_job.meta = {"tracked": True, "kind": "count", "owner": ada["user"].id}
    assert JobRef.of_rq_job(rq_job) == JobRef.of(record)
    rq_job.meta = {"tracked": True}
    Job.delete().execute()
    assert JobRef.of_rq_job(rq_job) is None  # its record is gone: nothing to keep in step
    assert JobRef.of_rq_job(None) is None


def test_a_start_that_cannot_be_recorded_is_logged_not_raised(
    app: Flask, ada: dict[str, Any]
) -> None:
    record = job_tracking.submit(
        owner=ada["user"], kind="count", func="tests.support.sample_jobs.count_to", args=(1,)
    )
    rq_job = RQJob.fetch(record.id, connection=get_redis())
    rq_job.meta = {"tracked": True}  # an older job: its reference is read from its row
    db.execute_sql("ALTER TABLE job RENAME TO job_away")  # a real database failure
    try:
        assert job_tracking.WorkerRecorder().start(rq_job) is None
    finally:
        db.execute_sql("ALTER TABLE job_away RENAME TO job")


def test_while_work_keeps_coming_successes_are_recorded_once_a_batch_is_due(
    app: Flask, ada: dict[str, Any]
) -> None:
    record = job_tracking.submit(
        owner=ada["user"], kind="count", func="tests.support.sample_jobs.count_to", args=(1,)
    )
    recorder = job_tracking.WorkerRecorder(sync_every=3600)
    run = recorder.start(RQJob.fetch(record.id, connection=get_redis()))
    assert run is not None
    assert run.recorded_by_worker
    assert not recorder.due  # nothing ran yet
    recorder.ran(run)
    assert recorder.unsynced
    assert not recorder.due
    recorder.sync_every = 0
    assert recorder.due
    worker = SimpleWorker(["default"], connection=get_redis())
    worker.recorder.sync_every = 0  # every job a batch of its own, recorded right after it
    worker.work(burst=True, with_scheduler=False)
    assert Job.get_by_id(record.id).status == "succeeded"


def test_the_reaper_leaves_a_job_alone_while_its_worker_still_beats(
    app: Flask, ada: dict[str, Any]
) -> None:
    record = job_tracking.submit(
        owner=ada["user"], kind="count", func="tests.support.sample_jobs.count_to", args=(1,)
    )
    worker = SimpleWorker(["default"], connection=get_redis())
    worker.register_birth()
    worker.heartbeat()
    try:
        rq_job = RQJob.fetch(record.id, connection=get_redis())
        rq_job.set_status(JobStatus.STARTED)
        rq_job.worker_name = worker.name
        rq_job.save()
        job_tracking.mark_started(JobRef.of(record))
        assert job_tracking.reap_abandoned() == {"failed": 0, "requeued": 0, "succeeded": 0}
        assert Job.get_by_id(record.id).status == "started"
    finally:
        worker.register_death()
    get_redis().delete(worker.key)  # as when the dead worker's key expires
    assert job_tracking.reap_abandoned()["failed"] == 1


def test_cancelling_a_job_rq_no_longer_knows_cancels_its_record(
    client: FlaskClient, ada: dict[str, Any]
) -> None:
    record = job_tracking.submit(
        owner=ada["user"], kind="count", func="tests.support.sample_jobs.count_to", args=(1,)
    )
    RQJob.fetch(record.id, connection=get_redis()).delete()  # expired, say
    shown = json_body(client.post(f"{API}/jobs/{record.id}/cancel", headers=ada["headers"]))
    assert shown["status"] == "cancelled"
    assert stream_events(user_channel(ada["user"].id))[-1][0] == "job.cancelled"
