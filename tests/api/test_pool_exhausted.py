"""A database or Redis pool that ran dry answers 503 with Retry-After, never 500."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask

from backend.redis_store import client_for, redis_target
from tests.support.accounts import login, make_user
from tests.support.helpers import assert_error


def test_an_exhausted_pool_is_503_with_retry_after(
    make_app: Callable[..., Flask], tmp_path: Path
) -> None:
    from playhouse.pool import PooledSqliteDatabase

    app = make_app()
    pool = PooledSqliteDatabase(str(tmp_path / "pool.db"), max_connections=1, timeout=0.1)
    held = threading.Event()
    release = threading.Event()

    def hold_the_only_connection() -> None:
        pool.connect()
        held.set()
        release.wait(5)
        pool.close()

    holder = threading.Thread(target=hold_the_only_connection)
    holder.start()
    held.wait(5)

    @app.get("/_probe_pool")
    def probe() -> str:
        pool.connect()  # raises MaxConnectionsExceeded: the one connection is taken
        return "unreachable"

    try:
        response = app.test_client().get("/_probe_pool")
    finally:
        release.set()
        holder.join()
    assert_error(response, 503, "service_unavailable")
    assert response.headers["Retry-After"].isdigit()


@pytest.mark.parametrize("optimized", [False, True], ids=["main-path", "optimized"])
def test_an_exhausted_redis_pool_is_503_with_retry_after_for_streams(
    make_app: Callable[..., Flask], optimized: bool
) -> None:
    app = make_app(OPTIMIZATIONS=optimized)
    with app.app_context():
        make_user("ada@example.test")
        ada = login(app.test_client(), "ada@example.test")
        app.test_client().get("/api/v1/events", headers=ada.headers, buffered=False).close()
        client = client_for(redis_target(app), max_connections=1, timeout=0.1)
        app.extensions["redis"] = client
        taken = client.connection_pool.get_connection()  # the only connection, held
        try:
            response = app.test_client().get("/api/v1/events", headers=ada.headers)
        finally:
            client.connection_pool.release(taken)
            del app.extensions["redis"]
    assert_error(response, 503, "service_unavailable")
    assert response.headers["Retry-After"].isdigit()
