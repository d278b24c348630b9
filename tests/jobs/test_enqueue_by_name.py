"""Services enqueue jobs by dotted name (`"jobs.<topic>.<function>"`); the worker imports them."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from flask import Flask
from rq.job import JobStatus
from rq.registry import ScheduledJobRegistry

from backend.queues import enqueue, get_queue
from backend.services import mail
from jobs import mail as mail_jobs
from jobs import maintenance


def test_a_job_named_by_its_dotted_path_is_run_by_a_real_worker(
    app: Flask, run_worker: Callable[[], bool]
) -> None:
    job = enqueue("jobs.maintenance.check_health", queue="high")
    assert job.func_name == "jobs.maintenance.check_health"
    assert run_worker()
    job.refresh()
    assert job.get_status() == JobStatus.FINISHED
    assert (job.return_value() or {})["redis"] == "ok"


def test_a_named_job_can_wait_in_the_scheduled_registry(app: Flask) -> None:
    job = enqueue("jobs.maintenance.check_health", delay=timedelta(minutes=5), timeout=9)
    assert job.id in ScheduledJobRegistry(queue=get_queue("default")).get_job_ids()
    assert job.func is maintenance.check_health  # resolves to the job function itself


def test_the_mail_service_names_the_delivery_job_that_exists() -> None:
    module, _, function = mail.DELIVERY_JOB.rpartition(".")
    assert module == mail_jobs.__name__
    assert getattr(mail_jobs, function) is mail_jobs.deliver_mail
