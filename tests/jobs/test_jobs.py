"""The job layer: records kept in step with RQ, progress, events, cancel, reaping."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import rq
from flask import Flask
from flask.testing import FlaskClient
from rq import Queue, Retry
from rq.executions import Execution
from rq.job import Job as RQJob

from backend.models import Job, User
from backend.services import job_tracking as jobs
from backend.services.job_tracking import JobKind, JobRef, lifecycle
from tests.support.accounts import login, make_user
from tests.support.helpers import assert_error, json_body, stream_events
from tests.support.sample_jobs import count_to

COUNT_TO = "tests.support.sample_jobs.count_to"
EXPLODE = "tests.support.sample_jobs.explode"

API = "/api/v1"


class DiesBeforeRecording(rq.SimpleWorker):
    """A worker that records starts and leaves successes to itself, then never records them."""

    def perform_job(self, job: RQJob, queue: Queue, execution: Execution) -> bool:
        with jobs.performing(jobs.WorkerRecorder().start(job)):
            return bool(super().perform_job(job, queue, execution))


def kinds(user_id: int) -> list[str]:
    return [kind for kind, _ in stream_events(f"user:{user_id}")]


def test_a_job_runs_and_its_record_follows(
    client: FlaskClient, ada: dict[str, Any], run_worker: Callable[[], bool]
) -> None:
    record = jobs.submit(owner=ada["user"], kind="count", func=COUNT_TO, args=(5,))
    queued = json_body(client.get(f"{API}/jobs/{record.id}", headers=ada["headers"]))
    assert (queued["status"], queued["progress"]["done"]) == ("queued", 0)
    run_worker()
    done = json_body(client.get(f"{API}/jobs/{record.id}", headers=ada["headers"]))
    assert done["status"] == "succeeded"
    assert done["result"] == {"counted": 5}
    assert done["progress"] == {"done": 5, "total": 5, "percent": 100.0, "message": "step 5"}
    assert done["started_at"]
    assert done["finished_at"]
    events = kinds(ada["user"].id)
    assert events[-1] == "job.succeeded"
    assert events.count("job.succeeded") == 1
    assert "job.progress" in events


def test_progress_events_are_throttled_but_the_last_one_arrives(
    app: Flask, ada: dict[str, Any], run_worker: Callable[[], bool]
) -> None:
    record = jobs.submit(owner=ada["user"], kind="count", func=COUNT_TO, args=(500,))
    run_worker()
    progress = [d for kind, d in stream_events(f"user:{ada['user'].id}") if kind == "job.progress"]
    assert len(progress) < 50  # 500 updates in well under 5 s: at most 10 per second
    assert progress[-1]["progress"]["done"] == 500
    assert Job.get_by_id(record.id).progress_done == 500


def test_a_failing_job_records_the_error_without_a_traceback(
    client: FlaskClient, ada: dict[str, Any], run_worker: Callable[[], bool]
) -> None:
    record = jobs.submit(owner=ada["user"], kind="boom", func=EXPLODE, args=("bad input",))
    run_worker()
    body = json_body(client.get(f"{API}/jobs/{record.id}", headers=ada["headers"]))
    assert body["status"] == "failed"
    assert body["error"] == "ValueError: bad input"
    assert "Traceback" not in body["error"]
    assert kinds(ada["user"].id)[-1] == "job.failed"


def test_a_domain_error_is_shown_by_its_message_alone(
    app: Flask, ada: dict[str, Any], run_worker: Callable[[], bool]
) -> None:
    record = jobs.submit(
        owner=ada["user"],
        kind="refuse",
        func="tests.support.sample_jobs.refuse",
        args=("Row 3 is bad.",),
    )
    run_worker()
    assert Job.get_by_id(record.id).error == "Row 3 is bad."


def test_a_retried_job_goes_back_to_queued_until_retries_run_out(
    app: Flask, ada: dict[str, Any], run_worker: Callable[[], bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(jobs.KINDS, "flaky", JobKind(retry=Retry(max=1)))
    record = jobs.submit(owner=ada["user"], kind="flaky", func=EXPLODE, args=("transient",))
    run_worker()  # the first attempt fails and is requeued at once; the retry fails too
    final = Job.get_by_id(record.id)
    assert final.status == "failed"
    assert kinds(ada["user"].id).count("job.failed") == 1


def test_cancelling_a_queued_job_is_immediate(
    client: FlaskClient, ada: dict[str, Any], run_worker: Callable[[], bool]
) -> None:
    record = jobs.submit(owner=ada["user"], kind="count", func=COUNT_TO, args=(3,))
    response = client.post(f"{API}/jobs/{record.id}/cancel", headers=ada["headers"])
    assert json_body(response)["status"] == "cancelled"
    run_worker()
    assert Job.get_by_id(record.id).status == "cancelled"
    assert kinds(ada["user"].id) == ["job.cancelled"]
    again = client.post(f"{API}/jobs/{record.id}/cancel", headers=ada["headers"])
    assert_error(again, 409, "job_finished")


def test_jobs_are_private_to_their_owner_and_admins(
    client: FlaskClient, ada: dict[str, Any]
) -> None:
    record = jobs.submit(owner=ada["user"], kind="count", func=COUNT_TO, args=(1,))
    make_user("bob@example.test")
    bob = login(client, "bob@example.test").headers
    assert_error(client.get(f"{API}/jobs/{record.id}", headers=bob), 404, "not_found")
    assert_error(client.post(f"{API}/jobs/{record.id}/cancel", headers=bob), 404, "not_found")
    assert client.get(f"{API}/jobs", headers=bob).get_json() == []
    make_user("root@example.test", role="admin")
    root = login(client, "root@example.test").headers
    assert [j["id"] for j in client.get(f"{API}/jobs", headers=root).get_json()] == [record.id]
    assert [j["id"] for j in client.get(f"{API}/jobs", headers=ada["headers"]).get_json()] == [
        record.id
    ]


def test_plain_rq_jobs_have_no_record(app: Flask, run_worker: Callable[[], bool]) -> None:
    from backend.queues import enqueue

    enqueue(count_to, 2)
    run_worker()
    assert Job.select().count() == 0


def test_a_started_job_whose_worker_vanished_is_failed_by_the_reaper(
    app: Flask, ada: dict[str, Any]
) -> None:
    record = jobs.submit(owner=ada["user"], kind="count", func=COUNT_TO, args=(1,))
    jobs.mark_started(JobRef.of(record))  # as if a worker took it, then was SIGKILLed
    from backend.queues import get_queue

    get_queue().empty()
    assert jobs.reap_abandoned() == {"failed": 1, "requeued": 0, "succeeded": 0}
    final = Job.get_by_id(record.id)
    assert (final.status, final.error) == ("failed", jobs.ABANDONED_MESSAGE)
    assert kinds(ada["user"].id) == ["job.failed"]
    assert jobs.reap_abandoned() == {"failed": 0, "requeued": 0, "succeeded": 0}


def test_a_finished_job_whose_worker_died_before_recording_it_succeeds_by_the_reaper(
    app: Flask, ada: dict[str, Any]
) -> None:
    from backend.redis_store import get_redis

    record = jobs.submit(owner=ada["user"], kind="count", func=COUNT_TO, args=(2,))
    jobs.mark_started(JobRef.of(record))
    # a recording worker runs the job, then "dies" before it records the success
    DiesBeforeRecording(["default"], connection=get_redis()).work(burst=True, with_scheduler=False)
    assert jobs.get_job(user=ada["user"], job_id=record.id).status == "started"
    assert jobs.reap_abandoned() == {"failed": 0, "requeued": 0, "succeeded": 1}
    final = Job.get_by_id(record.id)
    assert (final.status, final.result, final.progress_done) == ("succeeded", {"counted": 2}, 2)
    assert kinds(ada["user"].id)[-1] == "job.succeeded"


def test_a_success_the_worker_cannot_record_is_left_to_the_reaper(
    app: Flask, ada: dict[str, Any], run_worker: Callable[[], bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    import redis

    def unreachable(refs: list[JobRef]) -> int:
        raise redis.ConnectionError("Redis went away")

    monkeypatch.setattr(lifecycle, "record_finished", unreachable)
    record = jobs.submit(owner=ada["user"], kind="count", func=COUNT_TO, args=(1,))
    run_worker()
    assert jobs.get_job(user=ada["user"], job_id=record.id).status == "started"
    monkeypatch.undo()
    assert jobs.reap_abandoned()["succeeded"] == 1
    assert Job.get_by_id(record.id).status == "succeeded"


def test_under_a_plain_rq_worker_a_job_records_its_own_start_and_success(
    client: FlaskClient, ada: dict[str, Any]
) -> None:
    from backend.redis_store import get_redis

    record = jobs.submit(owner=ada["user"], kind="count", func=COUNT_TO, args=(3,))
    rq.SimpleWorker(["default"], connection=get_redis()).work(burst=True, with_scheduler=False)
    done = json_body(client.get(f"{API}/jobs/{record.id}", headers=ada["headers"]))
    assert (done["status"], done["result"]) == ("succeeded", {"counted": 3})
    assert done["started_at"]
    assert kinds(ada["user"].id)[-1] == "job.succeeded"


def test_a_result_that_cannot_be_loaded_does_not_hold_up_the_others(
    app: Flask, ada: dict[str, Any], run_worker: Callable[[], bool]
) -> None:
    odd = jobs.submit(
        owner=ada["user"], kind="odd", func="tests.support.sample_jobs.return_unloadable"
    )
    fine = jobs.submit(owner=ada["user"], kind="count", func=COUNT_TO, args=(1,))
    run_worker()
    assert (Job.get_by_id(odd.id).status, Job.get_by_id(odd.id).result) == ("succeeded", None)
    assert Job.get_by_id(fine.id).result == {"counted": 1}


def test_a_job_that_can_be_requeued_is_requeued(
    app: Flask, ada: dict[str, Any], run_worker: Callable[[], bool], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(jobs.KINDS, "safe", JobKind(requeue_if_abandoned=True))
    record = jobs.submit(owner=ada["user"], kind="safe", func=COUNT_TO, args=(2,))
    from rq.job import Job as RQJob
    from rq.job import JobStatus

    from backend.redis_store import get_redis

    rq_job = RQJob.fetch(record.id, connection=get_redis())
    rq_job.set_status(JobStatus.STARTED)
    rq_job.worker_name = "gone-worker"
    rq_job.save()
    jobs.mark_started(JobRef.of(record))
    assert jobs.reap_abandoned() == {"failed": 0, "requeued": 1, "succeeded": 0}
    assert Job.get_by_id(record.id).status == "queued"
    run_worker()
    assert Job.get_by_id(record.id).status == "succeeded"


def test_nothing_is_written_when_redis_is_down(
    make_app: Callable[..., Flask], ada: dict[str, Any]
) -> None:
    offline = make_app(REDIS_URL="redis://127.0.0.1:1/0")
    with offline.app_context(), pytest.raises(Exception, match="Error"):
        jobs.submit(owner=User.get(), kind="count", func=COUNT_TO, args=(1,))
    assert Job.select().count() == 0


def test_old_records_are_purged(app: Flask, run_worker: Callable[[], bool]) -> None:
    from datetime import timedelta

    from backend.models import AuthSession, Notification, OneTimeToken, UploadUrl, utcnow
    from backend.queues import enqueue
    from jobs import maintenance

    user = make_user("old@example.test")
    long_ago = utcnow() - timedelta(days=400)
    fresh = utcnow()
    for when in (long_ago, fresh):
        OneTimeToken.create(
            user=user, purpose="email_verify", token_hash=f"h{when.timestamp()}",
            expires_at=when, used_at=when,
        )  # fmt: skip
        AuthSession.create(user=user, current_jti=f"j{when.timestamp()}", revoked_at=when)
        Notification.create(user=user, kind="k", title="t", read_at=when)
        UploadUrl.create(
            owner=user, session_id=1, kind="file", token_hash=f"u{when.timestamp()}",
            purpose="upload", filename="a.csv", max_bytes=1, expires_at=when,
        )  # fmt: skip
    Notification.create(user=user, kind="k", title="unread, old", created_at=long_ago)
    job = enqueue(maintenance.purge_old_records)
    run_worker()
    assert job.return_value() == {
        "tokens": 1, "upload_urls": 1, "sessions": 1, "notifications": 1,
    }  # fmt: skip
    assert UploadUrl.select().count() == 1
    assert OneTimeToken.select().count() == 1
    assert AuthSession.select().count() == 1
    assert Notification.select().count() == 2
