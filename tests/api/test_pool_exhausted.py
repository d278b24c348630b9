"""A database pool that ran dry answers 503 with Retry-After, never 500."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from flask import Flask

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
