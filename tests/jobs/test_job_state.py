"""Live job state in Redis: what reads show before rows catch up, one ending, batched sync."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient

from backend.db import db
from backend.models import Job
from backend.redis_store import client_from_url, get_redis, redis_url
from backend.services import job_tracking as jobs
from backend.services.job_tracking import JobRef, JobRun
from backend.services.job_tracking.state import DIRTY_KEY, overlay
from jobs.worker import SimpleWorker, shared_connection
from tests.support.helpers import json_body, stream_events

COUNT_TO = "tests.support.sample_jobs.count_to"

API = "/api/v1"


class JobTable:
    """Takes the job table away and brings it back: a real database failure."""

    away = False

    def take_away(self) -> None:
        db.execute_sql("ALTER TABLE job RENAME TO job_away")
        self.away = True

    def bring_back(self) -> None:
        db.execute_sql("ALTER TABLE job_away RENAME TO job")
        self.away = False


@pytest.fixture
def job_table(app: Flask) -> Iterator[JobTable]:
    table = JobTable()
    yield table
    if table.away:
        table.bring_back()


def events_of(user_id: int) -> list[str]:
    return [kind for kind, _ in stream_events(f"user:{user_id}")]


def test_reads_show_a_running_job_before_its_row_catches_up(
    client: FlaskClient, ada: dict[str, Any]
) -> None:
    record = jobs.submit(owner=ada["user"], kind="count", func=COUNT_TO, args=(10,))
    ref = JobRef.of(record)
    assert jobs.mark_started(ref)
    JobRun(ref, recorded_by_worker=True).report_progress(3, 10, "three")
    stored = Job.get_by_id(record.id)
    assert (stored.status, stored.progress_done) == ("queued", 0)  # not synced yet
    shown = json_body(client.get(f"{API}/jobs/{record.id}", headers=ada["headers"]))
    assert shown["status"] == "started"
    assert shown["progress"] == {"done": 3, "total": 10, "percent": 30.0, "message": "three"}
    listed = client.get(f"{API}/jobs", headers=ada["headers"]).get_json()
    assert [(j["id"], j["status"]) for j in listed] == [(record.id, "started")]
    assert jobs.sync_rows() == 1
    stored = Job.get_by_id(record.id)
    assert (stored.status, stored.progress_done, stored.progress_message) == (
        "started", 3, "three",
    )  # fmt: skip
    assert stored.started_at is not None
    assert jobs.sync_rows() == 0


def test_a_job_ends_once_whoever_ends_it_first(client: FlaskClient, ada: dict[str, Any]) -> None:
    record = jobs.submit(owner=ada["user"], kind="count", func=COUNT_TO, args=(3,))
    ref = JobRef.of(record)
    jobs.mark_started(ref)
    run = JobRun(ref, recorded_by_worker=False)
    run.report_progress(2, 3, "two")
    jobs.mark_cancelled(ref)  # as the stop callback does
    run.succeeded({"counted": 3})  # the job's own ending, too late
    run.report_progress(3, 3, "late")
    assert not jobs.mark_started(ref)
    jobs.sync_rows()
    stored = Job.get_by_id(record.id)
    assert (stored.status, stored.result, stored.progress_done) == ("cancelled", None, 2)
    assert events_of(ada["user"].id) == ["job.progress", "job.cancelled"]
    cancelled = stream_events(f"user:{ada['user'].id}")[-1][1]
    assert cancelled["progress"]["done"] == 2  # the progress it had reached
    shown = json_body(client.get(f"{API}/jobs/{record.id}", headers=ada["headers"]))
    assert shown["status"] == "cancelled"


def test_a_failed_sync_keeps_the_states_for_the_next_one(
    app: Flask, ada: dict[str, Any], job_table: JobTable
) -> None:
    record = jobs.submit(owner=ada["user"], kind="count", func=COUNT_TO, args=(1,))
    jobs.mark_started(JobRef.of(record))
    job_table.take_away()
    with pytest.raises(Exception, match="job"):
        jobs.sync_rows()
    assert get_redis().sismember(DIRTY_KEY, record.id)
    job_table.bring_back()
    assert jobs.sync_rows() == 1
    assert Job.get_by_id(record.id).status == "started"


def test_a_worker_whose_sync_fails_keeps_working_and_retries(
    app: Flask, ada: dict[str, Any], job_table: JobTable
) -> None:
    worker = SimpleWorker(["default"], connection=get_redis())
    record = jobs.submit(owner=ada["user"], kind="count", func=COUNT_TO, args=(1,))
    jobs.mark_started(JobRef.of(record))
    job_table.take_away()
    worker.recorder.unsynced = True
    worker.sync_job_records()  # logged, not raised
    assert worker.recorder.unsynced
    job_table.bring_back()
    worker.sync_job_records()
    assert not worker.recorder.unsynced
    assert Job.get_by_id(record.id).status == "started"


def test_reads_fall_back_to_the_stored_rows_when_redis_is_down(
    make_app: Callable[..., Flask], ada: dict[str, Any]
) -> None:
    record = jobs.submit(owner=ada["user"], kind="count", func=COUNT_TO, args=(1,))
    jobs.mark_started(JobRef.of(record))
    offline = make_app(REDIS_URL="redis://127.0.0.1:1/0")
    with offline.app_context():
        stored = Job.get_by_id(record.id)
        overlay([stored])
        assert stored.status == "queued"


def test_rows_follow_when_the_worker_runs_out_of_work(
    app: Flask, ada: dict[str, Any], run_worker: Callable[[], bool]
) -> None:
    ids = [
        jobs.submit(owner=ada["user"], kind="count", func=COUNT_TO, args=(2,)).id for _ in range(3)
    ]
    run_worker()
    assert [Job.get_by_id(i).status for i in ids] == ["succeeded"] * 3
    assert get_redis().scard(DIRTY_KEY) == 0
    assert events_of(ada["user"].id).count("job.succeeded") == 3


def test_the_worker_shares_the_apps_redis_client_for_the_same_server(app: Flask) -> None:
    ours = get_redis()
    same = redis.Redis.from_url(redis_url(app))  # as `rq worker --url` builds it
    assert same is not ours
    assert shared_connection(same, ours) is ours
    assert shared_connection(None, ours) is ours
    other = client_from_url("redis://127.0.0.1:1/5")
    assert shared_connection(other, ours) is other
