"""Shared fixtures: a fresh database per test, a flushed Redis database, a real RQ worker.

The database is SQLite unless `DATABASE_URL` names PostgreSQL, in which case a
throw-away database is created on that server for the session. Redis is the
server in `REDIS_URL` (on a database of its own) or, when unset, an embedded
one started for the session.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from peewee import Database

from backend import create_app
from backend.db import database_from_url, migrate
from backend.embedded_redis import EmbeddedRedis
from backend.queues import QUEUE_NAMES
from backend.redis_store import client_from_url, get_redis
from jobs.worker import SimpleWorker

pytest_plugins = ["tests.support.processes", "tests.support.smtp"]

TEST_REDIS_DB = 13


def with_redis_db(url: str, number: int) -> str:
    """Return `url` pointing at Redis database `number`."""
    if url.startswith("unix://"):
        return f"{url.split('?', 1)[0]}?db={number}"
    return urlunsplit(urlsplit(url)._replace(path=f"/{number}"))


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The test Redis: `REDIS_URL`'s server, or an embedded one for the session."""
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


class TestDatabase:
    """A migrated database for the session, reset to empty before each test."""

    def __init__(self, base_url: str | None, workdir: Path) -> None:
        """Create and migrate the session's database."""
        self.workdir = workdir
        self.postgres_admin_url = base_url if base_url and base_url.startswith("postgres") else None
        if self.postgres_admin_url:
            self.name = f"flet_backend_test_{uuid.uuid4().hex[:8]}"
            self._admin_sql(f'CREATE DATABASE "{self.name}"')
            self.url = urlunsplit(urlsplit(self.postgres_admin_url)._replace(path=f"/{self.name}"))
        else:
            self.template = workdir / "template.db"
            self.url = f"sqlite:///{self.template}"
        database = database_from_url(self.url)
        with database.connection_context():
            migrate(database)
            self.tables = [t for t in database.get_tables() if t != "schema_migration"]
        database.close()

    def _admin_sql(self, sql: str) -> None:
        assert self.postgres_admin_url is not None
        admin = database_from_url(self.postgres_admin_url)
        admin.connect()
        admin.connection().autocommit = True
        admin.execute_sql(sql)
        admin.close()

    def fresh_url(self, tmp_path: Path) -> str:
        """Return the URL of an empty, fully migrated database for one test."""
        if self.postgres_admin_url is None:
            target = tmp_path / "test.db"
            shutil.copyfile(self.template, target)
            return f"sqlite:///{target}"
        database: Database = database_from_url(self.url)
        with database.connection_context():
            if self.tables:
                quoted = ", ".join(f'"{t}"' for t in self.tables)
                database.execute_sql(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE")
        return self.url

    def drop(self) -> None:
        """Remove the session's PostgreSQL database."""
        if self.postgres_admin_url:
            self._admin_sql(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


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


@pytest.fixture
def make_app(database_url: str, redis_url: str, outbox: Path) -> Callable[..., Flask]:
    """Build an app on the test database and Redis, with `overrides` applied."""

    def build(**overrides: Any) -> Flask:
        config = {"TESTING": True, "ENV": "development", "DATABASE_URL": database_url,
                  "REDIS_URL": redis_url, "MAIL_OUTBOX_DIR": str(outbox),
                  "FILES_DIR": str(outbox.parent / "files"), **overrides}  # fmt: skip
        return create_app(config)

    return build


@pytest.fixture(autouse=True)
def _flush_redis(redis_url: str) -> None:
    """Every test starts with the test Redis database empty."""
    redis = client_from_url(redis_url)
    redis.flushdb()
    redis.close()


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
def run_worker(app: Flask) -> Callable[[], bool]:
    """Run a real RQ worker over every queue until they are empty (burst mode)."""

    def work() -> bool:
        worker = SimpleWorker(list(QUEUE_NAMES), connection=get_redis())
        return bool(worker.work(burst=True, with_scheduler=False))

    return work
