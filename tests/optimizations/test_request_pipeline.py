"""The per-request hooks: one access line per request, limits on writes, no cookie work."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from flask import Flask
from flask.testing import FlaskClient

from backend import logs
from backend.redis_store import get_redis
from tests.support.helpers import assert_error
from tests.support.log_capture import captured_logs


def test_the_access_line_is_rendered_by_structlog_with_the_request_id(app: Flask) -> None:
    with captured_logs(app) as lines:
        logs.begin_request("trace-me")
        logs.log_request("GET", "/healthz", 200, time.perf_counter())
        logging.getLogger("backend.test").warning("something")  # an ordinary line
    access, other = lines.all()
    assert list(access) == ["logger", "method", "path", "status", "duration_ms", "event",
                            "request_id", "level", "timestamp"]  # fmt: skip
    assert access["request_id"] == "trace-me"
    assert (access["level"], access["logger"], access["event"]) == (
        "info", "backend.access", "request",
    )  # fmt: skip
    assert access["timestamp"].endswith("Z")
    # Other log lines go through the stdlib handler, with the same request id.
    assert (other["event"], other["request_id"], other["logger"]) == (
        "something", "trace-me", "backend.test",
    )  # fmt: skip


def test_a_request_logs_one_access_line(app: Flask, client: FlaskClient) -> None:
    with captured_logs(app) as lines:
        client.get("/healthz", headers={"X-Request-ID": "abc"})
    assert [(e["path"], e["status"], e["request_id"]) for e in lines.all()] == [
        ("/healthz", 200, "abc")
    ]


def test_access_lines_follow_the_log_level(make_app: Callable[..., Flask]) -> None:
    app = make_app(LOG_LEVEL="WARNING")
    with captured_logs(app) as lines:
        app.test_client().get("/healthz")
    assert lines.all() == []


def test_reads_skip_the_limiter_but_writes_are_still_limited(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(RATELIMIT_WRITES="2/minute")
    with app.app_context():
        redis = get_redis()
    client = app.test_client()
    for _ in range(5):
        assert client.get("/api/v1/products").status_code == 200
    assert list(redis.scan_iter(match="*ratelimit*")) == []  # no limit was even counted
    for _ in range(2):
        assert client.post("/api/v1/products", json={}).status_code == 401
    assert list(redis.scan_iter(match="*ratelimit*")) != []
    response = client.post("/api/v1/products", json={})
    assert_error(response, 429, "rate_limited")
    assert 1 <= int(response.headers["Retry-After"]) <= 60


def test_no_session_cookie_is_read_or_set(client: FlaskClient) -> None:
    client.set_cookie("session", "not-even-signed")
    response = client.get("/healthz")
    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers
    assert "Cookie" not in response.headers.get("Vary", "")
