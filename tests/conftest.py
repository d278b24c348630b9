"""Shared fixtures: a fresh database per test, Redis for the tests that ask, a real RQ worker.

The folders mirror the code: `api/` (HTTP through the Flask test client, a file per
blueprint resource), `services/`, `jobs/` (job functions, worker, queues),
`optimizations/`, `unit/` (low-level modules, no Redis), `e2e/` (real processes: gunicorn,
RQ worker, cron, the dev server, the Flet app in Chromium; marked `slow`); helpers are in
`support/`.

The database is SQLite unless `DATABASE_URL` names PostgreSQL (see
`tests.support.databases`). Redis is the server in `REDIS_URL` (on a database of its own)
or, when unset, an embedded one started for the session by the first test that asks for
Redis: through `redis_url`, or `make_app`/`app`/`client`, which depend on it. A test that
asks for none of them (nor for `redis_sentinel`, a master, a replica and three sentinels of
its own: `tests.support.sentinel`) and still starts a Redis server fails.

Files are stored locally (`FILES_DIR` in the test's folder) unless the test is marked
`both_stores`: then it runs twice, on local storage and on S3 (a real SeaweedFS started
once per session, `tests.support.seaweedfs`; a prefix of its own per test).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from backend import create_app, draining
from backend.embedded_redis import EmbeddedRedis
from backend.queues import QUEUE_NAMES
from backend.redis_store import client_from_url, get_redis
from jobs.worker import SimpleWorker
from tests.support.accounts import ADMIN_EMAIL, USER_EMAIL, login, make_user
from tests.support.databases import TestDatabase, with_redis_db
from tests.support.processes import redis_servers_started_here
from tests.support.seaweedfs import SeaweedFS

pytest_plugins = [
    "tests.support.processes",
    "tests.support.smtp",
    "tests.support.oauth_provider",
    "tests.support.seaweedfs",
    "tests.support.stripe_stand_in",
    "tests.support.webhook_receiver",
    "tests.support.sentinel",
    "pytester",
]
STORES = ("local", "s3")

TEST_REDIS_DB = 13


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    """The session's Redis: `REDIS_URL`'s server on database 13, or an embedded one."""
    configured = os.environ.get("REDIS_URL")
    if configured:
        yield with_redis_db(configured, TEST_REDIS_DB)
        return
    server = EmbeddedRedis()
    server.start()
    try:
        yield with_redis_db(server.url, TEST_REDIS_DB)
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """The test Redis database, emptied for this test."""
    redis = client_from_url(redis_server)
    redis.flushdb()
    redis.close()
    return redis_server


@pytest.fixture(autouse=True)
def _redis_only_when_asked(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that leaves a Redis server running without having asked for Redis."""
    if "redis_server" in request.fixturenames or "redis_sentinel" in request.fixturenames:
        yield
        return
    before = redis_servers_started_here()
    yield
    if started := redis_servers_started_here() - before:
        pytest.fail(
            f"{request.node.nodeid} started a Redis server (pid {sorted(started)}) without "
            "asking for one: request the redis_url fixture (or make_app/app), or move the "
            "test out of tests/unit"
        )


@pytest.fixture(scope="session")
def test_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestDatabase]:
    """The session's migrated database (SQLite, or PostgreSQL per `DATABASE_URL`)."""
    database = TestDatabase(os.environ.get("DATABASE_URL"), tmp_path_factory.mktemp("db"))
    yield database
    database.drop()


@pytest.fixture
def database_url(test_database: TestDatabase, tmp_path: Path) -> str:
    """An empty, migrated database for this test."""
    return test_database.fresh_url(tmp_path)


@pytest.fixture
def outbox(tmp_path: Path) -> Path:
    """The folder where mail is written when no SMTP server is configured."""
    return tmp_path / "mail"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run the tests marked `both_stores` once per store (`files_storage`: local, s3)."""
    if metafunc.definition.get_closest_marker("both_stores") and (
        "files_storage" in metafunc.fixturenames
    ):
        metafunc.parametrize("files_storage", STORES, indirect=True)


@pytest.fixture
def files_storage(request: pytest.FixtureRequest) -> str:
    """Which store this test's files go to: `local`, or `s3` (tests marked `both_stores`)."""
    return str(getattr(request, "param", "local"))


@pytest.fixture
def storage_settings(request: pytest.FixtureRequest, files_storage: str) -> dict[str, str]:
    """The settings that put this test's files in its store (nothing for local storage)."""
    if files_storage == "local":
        return {}
    server: SeaweedFS = request.getfixturevalue("seaweedfs")
    return server.store().settings()


@pytest.fixture
def make_app(
    database_url: str, redis_url: str, outbox: Path, storage_settings: dict[str, str]
) -> Callable[..., Flask]:
    """Build an app on the test database, Redis and file store, with `overrides` applied."""

    def build(**overrides: Any) -> Flask:
        config = {"TESTING": True, "ENV": "development", "DATABASE_URL": database_url,
                  "REDIS_URL": redis_url, "MAIL_OUTBOX_DIR": str(outbox),
                  "FILES_DIR": str(outbox.parent / "files"),
                  "SPOOL_DIR": str(outbox.parent / "spool"), **storage_settings,
                  **overrides}  # fmt: skip
        return create_app(config)

    return build


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Iterator[Flask]:
    """The app under test, inside its app context."""
    flask_app = make_app()
    with flask_app.app_context():
        yield flask_app


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client for `app`."""
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    """A CLI runner for `app`'s commands."""
    return app.test_cli_runner()


@pytest.fixture
def admin(client: FlaskClient) -> dict[str, str]:
    """Request headers of a signed-in admin (`ADMIN_EMAIL`)."""
    make_user(ADMIN_EMAIL, role="admin")
    return login(client, ADMIN_EMAIL).headers


@pytest.fixture
def user(client: FlaskClient) -> dict[str, str]:
    """Request headers of a signed-in user with the plain `user` role (`USER_EMAIL`)."""
    make_user(USER_EMAIL)
    return login(client, USER_EMAIL).headers


@pytest.fixture
def run_worker(app: Flask) -> Callable[[], bool]:
    """Run a real RQ worker over every queue until they are empty (burst mode)."""

    def work() -> bool:
        worker = SimpleWorker(list(QUEUE_NAMES), connection=get_redis())
        return bool(worker.work(burst=True, with_scheduler=False))

    return work


@pytest.fixture
def draining_process() -> Iterator[None]:
    """This process drains (as after gunicorn's SIGTERM) for the test."""
    draining.begin()
    try:
        yield
    finally:
        draining.reset()
