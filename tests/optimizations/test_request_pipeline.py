"""The per-request hooks made cheaper: same access lines, limits on writes, no cookie work."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from backend import logs
from backend.redis_store import get_redis
from tests.support.helpers import assert_error


@pytest.fixture
def only_our_handler() -> Iterator[io.StringIO]:
    """The root logger as in production: our stderr handler alone (here on a buffer)."""
    root = logging.getLogger()
    saved = root.handlers[:]
    handler = logs._installed[0]
    assert isinstance(handler, logging.StreamHandler)
    stream = io.StringIO()
    previous = handler.setStream(stream)
    root.handlers = [handler]
    try:
        yield stream
    finally:
        handler.setStream(previous)
        root.handlers = saved


def test_the_access_line_is_written_directly_and_reads_like_structlogs(
    app: Flask, only_our_handler: io.StringIO
) -> None:
    logs.begin_request("trace-me")
    logs.log_request("GET", "/healthz", 200, time.perf_counter())
    line = json.loads(only_our_handler.getvalue())
    assert list(line) == ["method", "path", "status", "duration_ms", "event", "request_id",
                          "level", "logger", "timestamp"]  # fmt: skip
    assert line["request_id"] == "trace-me"
    assert (line["level"], line["logger"], line["event"]) == ("info", "backend.access", "request")
    assert line["timestamp"].endswith("Z")
    # Other log lines still go through structlog, with the same request id.
    logging.getLogger("backend.test").warning("something")
    other = json.loads(only_our_handler.getvalue().splitlines()[1])
    assert (other["event"], other["request_id"]) == ("something", "trace-me")


def test_a_request_logs_one_line_through_the_fast_path(
    client: FlaskClient, only_our_handler: io.StringIO
) -> None:
    client.get("/healthz", headers={"X-Request-ID": "abc"})
    lines = [json.loads(line) for line in only_our_handler.getvalue().splitlines()]
    assert [(e["path"], e["status"], e["request_id"]) for e in lines] == [("/healthz", 200, "abc")]


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
