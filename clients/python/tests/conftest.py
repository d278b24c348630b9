"""A real server per test module: gunicorn (the Procfile's `web:`) and an RQ worker.

The main suite's fixtures (tests/conftest.py) apply to its own folder only, so
the pieces are reused from there and from `tests.support.processes`, at module scope:
one migrated database and one Redis database per module, on SQLite or
PostgreSQL (`DATABASE_URL`) and the machine's Redis (`REDIS_URL`) or an
embedded one. Redis database 11 is used, not the main suite's 13, which its
tests flush (possibly from another run at the same time).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from sdk_stack import ADMIN_EMAIL, PASSWORD, SDK_REDIS_DB, Stack

from backend.embedded_redis import EmbeddedRedis
from backend.redis_store import client_from_url
from tests.support.databases import TestDatabase, with_redis_db
from tests.support.processes import (
    Process,
    free_port,
    procfile,
    procfile_environment,
    wait_until_up,
)


@pytest.fixture(scope="session")
def sdk_redis_url() -> Iterator[str]:
    """The machine's Redis (`REDIS_URL`) on database 11, or an embedded server."""
    configured = os.environ.get("REDIS_URL")
    if configured:
        yield with_redis_db(configured, SDK_REDIS_DB)
        return
    server = EmbeddedRedis()
    server.start()
    try:
        yield with_redis_db(server.url, SDK_REDIS_DB)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def sdk_database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestDatabase]:
    """A migrated database for the session (SQLite, or PostgreSQL per `DATABASE_URL`)."""
    database = TestDatabase(os.environ.get("DATABASE_URL"), tmp_path_factory.mktemp("sdkdb"))
    yield database
    database.drop()


@pytest.fixture(scope="module")
def stack(
    request: pytest.FixtureRequest,
    sdk_database: TestDatabase,
    sdk_redis_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    """gunicorn + an RQ worker on an empty database; module options as module attributes.

    `WEB_CONCURRENCY` (default 2), `WITH_WORKER` (default True) and `EXTRA_ENV`.
    """
    tmp = tmp_path_factory.mktemp("stack")
    redis = client_from_url(sdk_redis_url)
    redis.flushdb()
    redis.close()
    port = free_port()
    env = {
        **procfile_environment(sdk_database.fresh_url(tmp), sdk_redis_url, port),
        "WEB_CONCURRENCY": str(getattr(request.module, "WEB_CONCURRENCY", 2)),
        "RATELIMIT_ENABLED": "0",
        "MAIL_OUTBOX_DIR": str(tmp / "mail"),
        "SPOOL_DIR": str(tmp / "spool"),
        "SSE_RETRY_MS": "200",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp / "prometheus"),
        **getattr(request.module, "EXTRA_ENV", {}),
    }
    web = Process(["bash", "-c", f"exec {procfile()['web']}"], env, background=True)
    running = Stack(f"http://127.0.0.1:{port}", port, env, web, [web])
    try:
        if getattr(request.module, "WITH_WORKER", True):
            running.start(procfile()["worker"])
        wait_until_up(f"{running.base_url}/healthz")
        running.flask("create-admin", "--email", ADMIN_EMAIL, "--password", PASSWORD)
        yield running
    finally:
        running.stop()
