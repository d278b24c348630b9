"""`POST /products/import`: upload checks, the 202 job, and the job's result."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from backend.models import Job, Product
from tests.support.helpers import assert_error, json_body
from tests.support.storage import spooled

pytestmark = pytest.mark.both_stores

API = "/api/v1"
CSV = "sku,name,description,price,currency,stock\nT-1,Tea,,4.50,USD,3\nT-2,Mug,,x,USD,1\n"


def upload(client: FlaskClient, headers: dict[str, str], content: bytes) -> TestResponse:
    data = {"file": (io.BytesIO(content), "products.csv", "text/csv")}
    return client.post(
        f"{API}/products/import", data=data, headers=headers, content_type="multipart/form-data"
    )


@pytest.fixture
def app_with_spool(make_app: Callable[..., Flask], tmp_path: Path) -> Flask:
    return make_app(SPOOL_DIR=str(tmp_path / "spool"))


def test_an_import_is_a_202_job_that_a_worker_completes(
    app_with_spool: Flask, admin: dict[str, str], run_worker: Callable[[], bool]
) -> None:
    client = app_with_spool.test_client()
    response = upload(client, admin, CSV.encode())
    assert response.status_code == 202
    job = json_body(response)
    assert response.headers["Location"] == f"/api/v1/jobs/{job['id']}"
    assert job["status"] == "queued"
    with app_with_spool.app_context():
        run_worker()
    done = json_body(client.get(f"{API}/jobs/{job['id']}", headers=admin))
    assert done["status"] == "succeeded"
    assert done["result"]["created"] == 1
    assert done["result"]["failed"] == 1
    assert done["result"]["errors"][0]["row"] == 2
    assert Product.get().sku == "T-1"
    assert spooled(app_with_spool) == []


@pytest.mark.parametrize(
    "content",
    [b"", b"\x89PNG\r\n\x1a\n\x00\x00binary", b"sku,name\nA,B\n", b"wrong,header,here\n"],
)
def test_bad_files_are_refused_at_once_and_leave_nothing(
    app_with_spool: Flask, admin: dict[str, str], content: bytes
) -> None:
    client = app_with_spool.test_client()
    assert_error(upload(client, admin, content), 422, "invalid_csv")
    assert Job.select().count() == 0
    assert spooled(app_with_spool) == []


def test_a_missing_file_is_422(client: FlaskClient, admin: dict[str, str]) -> None:
    response = client.post(f"{API}/products/import", data={}, headers=admin)
    assert_error(response, 422, "validation_error")


def test_imports_are_for_admins(client: FlaskClient, user: dict[str, str]) -> None:
    assert_error(upload(client, user, CSV.encode()), 403, "forbidden")


def test_too_large_uploads_are_413(make_app: Callable[..., Flask], admin: dict[str, str]) -> None:
    client = make_app(IMPORT_MAX_BYTES=100).test_client()
    response = upload(client, admin, CSV.encode() * 10)
    assert_error(response, 413, "payload_too_large")


def test_redis_down_while_enqueueing_is_503_and_nothing_is_written(
    make_app: Callable[..., Flask], admin: dict[str, str], tmp_path: Path
) -> None:
    offline = make_app(REDIS_URL="redis://127.0.0.1:1/0", SPOOL_DIR=str(tmp_path / "spool"))
    response = upload(offline.test_client(), admin, CSV.encode())
    body = assert_error(response, 503, "service_unavailable")
    assert response.headers["Retry-After"] == "5"
    assert body["message"]
    assert Job.select().count() == 0
    assert spooled(offline) == []
