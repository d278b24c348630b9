"""Operations endpoints: liveness, readiness, metrics, request ids."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from backend import draining
from tests.support.helpers import assert_error
from tests.support.log_capture import captured_logs


def test_healthz_answers_without_dependencies(make_app: Callable[..., Flask]) -> None:
    app = make_app(REDIS_URL="redis://127.0.0.1:1/0", DATABASE_URL="sqlite:////nonexistent/x.db")
    response = app.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.json == {"status": "ok"}


def test_readyz_reports_each_dependency(client: FlaskClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}


def test_readyz_is_503_in_the_error_shape_when_redis_is_unreachable(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(REDIS_URL="redis://127.0.0.1:1/0", READYZ_TIMEOUT=0.5)
    response = app.test_client().get("/readyz")
    body = assert_error(response, 503, "service_unavailable")
    assert body["errors"] == {"redis": "ConnectionError"}
    assert "redis" in body["message"]


def test_readyz_is_503_when_the_database_is_unreachable(make_app: Callable[..., Flask]) -> None:
    app = make_app(DATABASE_URL="postgresql://nobody@127.0.0.1:1/none")
    response = app.test_client().get("/readyz")
    body = assert_error(response, 503, "service_unavailable")
    assert body["errors"] == {"database": "OperationalError"}


def test_readyz_is_503_draining_while_the_process_shuts_down(
    client: FlaskClient, draining_process: None
) -> None:
    response = client.get("/readyz")
    body = assert_error(response, 503, "draining")
    assert body["errors"] == {"instance": "draining"}
    assert response.headers["Retry-After"] == "1"
    assert client.get("/healthz").status_code == 200  # alive all the same
    assert client.get("/api/v1/products").status_code == 200  # and serving what it is sent


def test_readyz_is_ok_again_when_draining_is_called_off(client: FlaskClient) -> None:
    draining.begin()
    draining.reset()
    assert client.get("/readyz").status_code == 200


def test_the_openapi_document_says_readyz_drains(client: FlaskClient) -> None:
    document = client.get("/api/v1/openapi.json").get_json()
    answers = document["paths"]["/readyz"]["get"]["responses"]
    assert "draining" in answers["503"]["description"]
    assert answers["503"]["content"]["application/json"]["example"]["error"] == "draining"


def test_metrics_count_requests_by_endpoint_and_show_queue_depths(client: FlaskClient) -> None:
    client.get("/healthz")
    client.get("/no-such-page")
    body = client.get("/metrics").get_data(as_text=True)
    assert 'http_requests_total{endpoint="/healthz",method="GET",status="200"}' in body
    assert 'endpoint="<unmatched>",method="GET",status="404"' in body
    assert "http_request_duration_seconds_bucket" in body
    for queue in ("high", "default", "low"):
        assert f'rq_queue_jobs{{queue="{queue}"}} 0.0' in body


def test_metrics_still_render_when_redis_is_down(make_app: Callable[..., Flask]) -> None:
    app = make_app(REDIS_URL="redis://127.0.0.1:1/0")
    response = app.test_client().get("/metrics")
    assert response.status_code == 200
    assert "rq_queue_jobs" not in response.get_data(as_text=True)


def test_metrics_add_up_workers_in_multiprocess_mode(
    client: FlaskClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "prometheus"
    folder.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))
    response = client.get("/metrics")
    assert response.status_code == 200
    assert "rq_queue_jobs" in response.get_data(as_text=True)


def test_request_id_is_echoed_when_sane_and_generated_otherwise(client: FlaskClient) -> None:
    assert (
        client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["X-Request-ID"]
        == "abc-123"
    )
    generated = client.get("/healthz", headers={"X-Request-ID": "bad id <script>"})
    assert len(generated.headers["X-Request-ID"]) == 32
    assert client.get("/healthz").headers["X-Request-ID"] != generated.headers["X-Request-ID"]


def test_each_request_logs_one_json_line(app: Flask, client: FlaskClient) -> None:
    with captured_logs(app) as captured:
        client.get("/healthz", headers={"X-Request-ID": "trace-me"})
    lines = captured.access()
    assert len(lines) == 1
    entry = lines[0]
    assert entry["event"] == "request"
    assert entry["request_id"] == "trace-me"
    assert entry["method"] == "GET"
    assert entry["path"] == "/healthz"
    assert entry["status"] == 200
    assert entry["duration_ms"] >= 0
