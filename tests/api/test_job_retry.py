"""`POST /jobs/{id}/retry`: a failed or cancelled job runs again as a new job, on the same input."""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from peewee import PostgresqlDatabase
from werkzeug.test import TestResponse

from backend.db import db
from backend.models import Job, Product, User, utcnow
from backend.services import job_tracking
from backend.spool import get_spool
from tests.support.accounts import login, make_user
from tests.support.helpers import assert_error, json_body
from tests.support.storage import spooled

API = "/api/v1"
CSV = b"sku,name,description,price,currency,stock\nT-1,Tea,,4.50,USD,3\nT-2,Mug,,6.00,USD,1\n"


def import_csv(client: FlaskClient, headers: dict[str, str]) -> dict[str, Any]:
    data = {"file": (io.BytesIO(CSV), "products.csv", "text/csv")}
    response = client.post(f"{API}/products/import", data=data, headers=headers,
                           content_type="multipart/form-data")  # fmt: skip
    assert response.status_code == 202, response.data
    return json_body(response)


def retry(client: FlaskClient, headers: dict[str, str], job_id: str) -> TestResponse:
    return client.post(f"{API}/jobs/{job_id}/retry", headers=headers)


def job_of(client: FlaskClient, headers: dict[str, str], job_id: str) -> dict[str, Any]:
    return json_body(client.get(f"{API}/jobs/{job_id}", headers=headers))


@pytest.fixture
def products_refused(app: Flask) -> Iterator[Callable[[], None]]:
    """Make the database refuse new products (a trigger) until the returned function is called."""
    postgres = isinstance(db.obj, PostgresqlDatabase)
    if postgres:
        db.execute_sql(
            "CREATE FUNCTION refuse_products() RETURNS trigger AS $$ BEGIN "
            "RAISE EXCEPTION 'the catalog is read-only'; END $$ LANGUAGE plpgsql"
        )
        db.execute_sql(
            "CREATE TRIGGER refuse BEFORE INSERT ON product FOR EACH ROW "
            "EXECUTE FUNCTION refuse_products()"
        )
    else:
        db.execute_sql(
            "CREATE TRIGGER refuse BEFORE INSERT ON product BEGIN "
            "SELECT RAISE(ABORT, 'the catalog is read-only'); END"
        )
    dropped = False

    def allow() -> None:
        nonlocal dropped
        if not dropped:
            db.execute_sql("DROP TRIGGER refuse ON product" if postgres else "DROP TRIGGER refuse")
            if postgres:
                db.execute_sql("DROP FUNCTION refuse_products()")
            dropped = True

    yield allow
    allow()


@pytest.mark.both_stores
def test_a_failed_import_retried_succeeds_on_the_same_input(
    app: Flask, client: FlaskClient, admin: dict[str, str], run_worker: Callable[[], bool],
    products_refused: Callable[[], None],
) -> None:  # fmt: skip
    first = import_csv(client, admin)
    run_worker()
    failed = job_of(client, admin, first["id"])
    assert failed["status"] == "failed", failed
    assert "read-only" in failed["error"]
    assert Product.select().count() == 0
    [kept] = spooled(app)  # the input stays for a retry
    products_refused()  # the database takes writes again

    response = retry(client, admin, first["id"])
    assert response.status_code == 202, response.data
    again = json_body(response)
    assert response.headers["Location"] == f"/api/v1/jobs/{again['id']}"
    assert (again["kind"], again["status"]) == ("products.import", "queued")
    assert again["id"] != first["id"]
    assert len(spooled(app)) == 1
    assert spooled(app) != [kept], "the retry runs on its own copy"
    run_worker()
    done = job_of(client, admin, again["id"])
    assert done["status"] == "succeeded", done
    assert (done["result"]["created"], done["result"]["failed"]) == (2, 0)
    assert sorted(p.sku for p in Product.select()) == ["T-1", "T-2"]
    assert spooled(app) == [], "a succeeded import drops its input"
    row = Job.get_by_id(again["id"])
    assert (row.retry_of, Job.get_by_id(first["id"]).retried_as) == (first["id"], again["id"])
    assert_error(retry(client, admin, first["id"]), 409, "job_not_retryable")  # retried already
    assert_error(retry(client, admin, again["id"]), 409, "job_not_retryable")  # succeeded


def test_a_cancelled_queued_import_can_be_retried(
    app: Flask, client: FlaskClient, admin: dict[str, str], run_worker: Callable[[], bool]
) -> None:
    first = import_csv(client, admin)
    cancelled = json_body(client.post(f"{API}/jobs/{first['id']}/cancel", headers=admin))
    assert cancelled["status"] == "cancelled"
    assert len(spooled(app)) == 1
    again = json_body(retry(client, admin, first["id"]))
    run_worker()
    assert job_of(client, admin, again["id"])["status"] == "succeeded"
    assert Product.select().count() == 2


def test_jobs_that_cannot_be_retried_are_409(
    app: Flask, client: FlaskClient, admin: dict[str, str], run_worker: Callable[[], bool]
) -> None:
    root = User.get(User.role == "admin")
    queued = import_csv(client, admin)
    assert_error(retry(client, admin, queued["id"]), 409, "job_not_retryable")  # not ended
    run_worker()
    assert_error(retry(client, admin, queued["id"]), 409, "job_not_retryable")  # succeeded
    plain = job_tracking.submit(
        owner=root, kind="tests.count", func="tests.support.sample_jobs.explode", args=("boom",)
    )
    run_worker()
    assert job_of(client, admin, plain.id)["status"] == "failed"
    body = assert_error(retry(client, admin, plain.id), 409, "job_not_retryable")
    assert "tests.count" in body["message"]


def test_a_retry_needs_its_input_and_the_window(
    app: Flask, client: FlaskClient, admin: dict[str, str]
) -> None:
    gone = import_csv(client, admin)
    client.post(f"{API}/jobs/{gone['id']}/cancel", headers=admin)
    get_spool().delete(Job.get_by_id(gone["id"]).args[0])  # purged
    body = assert_error(retry(client, admin, gone["id"]), 409, "job_not_retryable")
    assert "input" in body["message"]
    assert Job.get_by_id(gone["id"]).retried_as is None, "a refused retry leaves no claim"
    assert Job.select().count() == 1
    old = import_csv(client, admin)
    client.post(f"{API}/jobs/{old['id']}/cancel", headers=admin)
    window = app.config["JOBS_RETRY_WINDOW_HOURS"]
    Job.update(finished_at=utcnow() - timedelta(hours=window, minutes=1)).where(
        Job.id == old["id"]
    ).execute()
    body = assert_error(retry(client, admin, old["id"]), 409, "job_not_retryable")
    assert "too long ago" in body["message"]


def test_owners_and_admins_may_retry_others_get_404_and_anonymous_401(
    app: Flask, client: FlaskClient, admin: dict[str, str], run_worker: Callable[[], bool]
) -> None:
    make_user("alice@example.test")
    make_user("bob@example.test")
    alice = login(client, "alice@example.test").headers
    bob = login(client, "bob@example.test").headers
    started = client.post(f"{API}/orders/export", json={}, headers=alice)
    export = json_body(started)
    client.post(f"{API}/jobs/{export['id']}/cancel", headers=alice)
    assert_error(retry(client, bob, export["id"]), 404, "not_found")
    assert_error(retry(client, bob, "no-such-job"), 404, "not_found")
    assert_error(client.post(f"{API}/jobs/{export['id']}/retry"), 401, "unauthorized")
    by_admin = json_body(retry(client, admin, export["id"]))
    assert Job.get_by_id(by_admin["id"]).user_id == User.get(User.email == "alice@example.test").id
    assert job_of(client, alice, by_admin["id"])["kind"] == "orders.export"  # alice's job
    client.post(f"{API}/jobs/{by_admin['id']}/cancel", headers=alice)
    by_owner = retry(client, alice, by_admin["id"])  # a retry may be retried in turn
    assert by_owner.status_code == 202, by_owner.data
    run_worker()
    result = job_of(client, alice, json_body(by_owner)["id"])
    assert result["status"] == "succeeded", result
    assert result["result"]["orders"] == 0


@pytest.mark.both_stores
def test_the_reaper_drops_inputs_once_the_retry_window_passed(
    app: Flask, client: FlaskClient, admin: dict[str, str]
) -> None:
    from jobs.maintenance import reap_abandoned_jobs

    cancelled = import_csv(client, admin)
    client.post(f"{API}/jobs/{cancelled['id']}/cancel", headers=admin)
    assert reap_abandoned_jobs()["spool_files_removed"] == 0  # within the window: kept
    assert len(spooled(app)) == 1
    app.config["JOBS_RETRY_WINDOW_HOURS"] = 0
    time.sleep(1.1)  # S3 times have second precision
    assert reap_abandoned_jobs()["spool_files_removed"] == 1
    assert spooled(app) == []
    assert_error(retry(client, admin, cancelled["id"]), 409, "job_not_retryable")


def test_a_retry_that_cannot_be_queued_leaves_no_claim_and_no_copy(
    app: Flask, client: FlaskClient, admin: dict[str, str]
) -> None:
    first = import_csv(client, admin)
    client.post(f"{API}/jobs/{first['id']}/cancel", headers=admin)
    [kept] = spooled(app)
    Job.update(func="jobs.products.no_such_job").where(Job.id == first["id"]).execute()
    with pytest.raises(LookupError):
        job_tracking.retry(user=User.get(User.role == "admin"), job_id=first["id"])
    assert spooled(app) == [kept]
    assert Job.get_by_id(first["id"]).retried_as is None
    assert Job.select().count() == 1
