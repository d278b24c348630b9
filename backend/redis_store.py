"""The Redis client factory: one client per app, built from `REDIS_URL`.

With `REDIS_URL` unset the client talks to the embedded server of
`backend.embedded_redis`, started on first use.
"""

from __future__ import annotations

import os

import redis
from flask import Flask, current_app
from redis.driver_info import DriverInfo

from backend import embedded_redis

POOL_SIZE = 20  # connections per process, however many requests or streams it serves


def client_from_url(url: str, *, timeout: float | None = 5.0) -> redis.Redis:
    """Return a Redis client (bytes responses, as RQ needs) for `url`.

    Its pool holds at most `POOL_SIZE` connections; a request that finds them
    all busy waits for one (up to `timeout`).
    """
    pool = redis.BlockingConnectionPool.from_url(
        url,
        max_connections=POOL_SIZE,
        timeout=timeout,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        health_check_interval=30,
        client_name=f"flet-backend-{os.getpid()}",
        # Given, not looked up: redis-py otherwise reads its version from the
        # installed package metadata for every new connection (~4 ms; each forked
        # job opens one).
        driver_info=DriverInfo(name="redis-py", lib_version=redis.__version__),
    )
    return redis.Redis(connection_pool=pool)


def init_app(app: Flask) -> None:
    """Prepare the app's lazily created Redis client."""
    app.extensions["redis"] = None


def redis_url(app: Flask | None = None) -> str:
    """Return the Redis URL the app uses, starting the embedded server if needed."""
    app = app or current_app
    return app.config["REDIS_URL"] or embedded_redis.ensure_started()


def get_redis() -> redis.Redis:
    """Return the current app's Redis client, creating it on first use."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    client = app.extensions.get("redis")
    if client is None:
        client = client_from_url(redis_url(app))
        app.extensions["redis"] = client
    return client
