"""The Redis client factory: every Redis client a process makes is built here.

Redis is found through sentinels when `REDIS_SENTINELS` (with
`REDIS_SENTINEL_MASTER`) is set, else at `REDIS_URL`; with neither, the client
talks to the embedded server of `backend.embedded_redis`, started on first use.
A `RedisTarget` says which; `client_for(target)` builds a client for it with the
same pool limits and timeouts either way (see `backend.redis_sentinel` for how
a sentinel client behaves during a failover). The app's client (`get_redis`),
the SSE hub's Pub/Sub, the readiness check, the rate limiter's storage, the
jobs dashboard, and the RQ worker and cron processes (`jobs.rq_settings`) all
start from here.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import redis
from flask import Flask, current_app, has_app_context
from redis.driver_info import DriverInfo
from redis.sentinel import SentinelConnectionPool

from backend import embedded_redis
from backend.redis_sentinel import (
    RETRY_DEMOTED,
    Address,
    MasterConnection,
    RetryUntil,
    master_client,
    sentinel_addresses,
    sentinel_manager,
    sentinel_options,
)

POOL_SIZE = 20  # connections per process, however many requests or streams it serves


@dataclass(frozen=True)
class RedisTarget:
    """Where Redis is: a URL, or the master the sentinels name."""

    url: str | None = None
    sentinels: tuple[Address, ...] = ()
    master: str | None = None
    db: int = 0
    password: str | None = None  # the master's (and replicas') password
    sentinel_password: str | None = None

    @property
    def uses_sentinels(self) -> bool:
        """True when the master is found through sentinels."""
        return bool(self.sentinels)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> RedisTarget | None:
        """The sentinels in `config` if any, else its `REDIS_URL`; None with neither."""
        if config.get("REDIS_SENTINELS"):
            return cls(
                sentinels=tuple((str(h), int(p)) for h, p in config["REDIS_SENTINELS"]),
                master=config["REDIS_SENTINEL_MASTER"],
                db=int(config.get("REDIS_DB") or 0),
                password=config.get("REDIS_PASSWORD"),
                sentinel_password=config.get("REDIS_SENTINEL_PASSWORD"),
            )
        url = config.get("REDIS_URL")
        return cls(url=url) if url else None

    def describe(self) -> str:
        """A printable description without passwords."""
        if not self.uses_sentinels:
            return str(self.url)
        hosts = ",".join(f"{host}:{port}" for host, port in self.sentinels)
        return f"sentinels {hosts}, master {self.master!r}, db {self.db}"


def _connection_options(timeout: float | None, name: str) -> dict[str, Any]:
    return {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "health_check_interval": 30,
        "client_name": f"{name}-{os.getpid()}",
        # Given, not looked up: redis-py otherwise reads its version from the
        # installed package metadata for every new connection (~4 ms; each forked
        # job opens one).
        "driver_info": DriverInfo(name="redis-py", lib_version=redis.__version__),
    }


def client_for(
    target: RedisTarget,
    *,
    timeout: float | None = 5.0,
    max_connections: int = POOL_SIZE,
    name: str = "flet-backend",
) -> redis.Redis:
    """Return a Redis client (bytes responses, as RQ needs) for `target`.

    Its pool holds at most `max_connections`; a caller that finds them all busy
    waits for one (up to `timeout`), which also bounds connecting and each reply.
    """
    options = _connection_options(timeout, name)
    if target.uses_sentinels:
        manager = sentinel_manager(
            target.sentinels, password=target.sentinel_password, timeout=timeout
        )
        return master_client(
            manager, str(target.master), max_connections=max_connections, timeout=timeout,
            db=target.db, password=target.password, retry=RETRY_DEMOTED, **options,
        )  # fmt: skip
    pool = redis.BlockingConnectionPool.from_url(
        str(target.url), max_connections=max_connections, timeout=timeout, **options
    )
    return redis.Redis(connection_pool=pool)


def client_from_url(url: str, *, timeout: float | None = 5.0) -> redis.Redis:
    """Return a client for the Redis at `url` (`client_for` a URL target)."""
    return client_for(RedisTarget(url=url), timeout=timeout)


@contextlib.contextmanager
def short_lived_client(target: RedisTarget, *, timeout: float) -> Iterator[redis.Redis]:
    """A one-connection client for a single check, closed (with its sentinels) afterwards."""
    client = client_for(target, timeout=timeout, max_connections=1)
    try:
        yield client
    finally:
        client.connection_pool.disconnect()
        if isinstance(client.connection_pool, SentinelConnectionPool):
            client.connection_pool.sentinel_manager.close()


def init_app(app: Flask) -> None:
    """Prepare the app's lazily created Redis client."""
    app.extensions["redis"] = None


def redis_target(app: Flask | None = None) -> RedisTarget:
    """Return where the app's Redis is, starting the embedded server if nothing is set."""
    app = app or current_app
    return RedisTarget.from_config(app.config) or RedisTarget(url=embedded_redis.ensure_started())


def redis_url(app: Flask | None = None) -> str:
    """Return the app's `REDIS_URL` (sentinels aside), starting the embedded server if unset."""
    app = app or current_app
    return app.config["REDIS_URL"] or embedded_redis.ensure_started()


def get_redis() -> redis.Redis:
    """Return the current app's Redis client, creating it on first use."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    client = app.extensions.get("redis")
    if client is None:
        client = client_for(redis_target(app))
        app.extensions["redis"] = client
    return client


Command = tuple[Any, ...]  # a Redis command and its arguments, e.g. ("GET", "key")
ROUND_TRIPS = "backend.redis_round_trips"  # app.extensions: an installed `round_trip`


def round_trip(client: redis.Redis, commands: list[Command]) -> list[Any]:
    """Run `commands` on `client` in one round trip; return their replies in order.

    Replies are parsed as the client's own methods parse them; a command Redis
    refused raises its error (the others still ran), a connection error raises.
    For the app's own client (`get_redis()`) the optimisation layer may install
    a runner under `ROUND_TRIPS` that shares one round trip among the callers
    arriving together (event streams opened in a storm).
    """
    if not commands:
        return []
    extensions = current_app.extensions if has_app_context() else {}
    installed = extensions.get(ROUND_TRIPS)
    if installed is not None and client is extensions.get("redis"):
        replies: list[Any] = installed(commands)
        return replies
    with client.pipeline(transaction=False) as pipe:
        for command in commands:
            pipe.execute_command(*command)
        return list(pipe.execute())


def ride_out_failovers(client: redis.Redis, *, seconds: float) -> None:
    """Make `client` retry connection errors and timeouts for up to `seconds` (workers, cron).

    Applies to connections it opens from now on.
    """
    client.connection_pool.connection_kwargs["retry"] = RetryUntil(seconds)


def server_of(client: redis.Redis) -> tuple[Any, ...]:
    """What identifies the server (or sentinel-managed master) and database `client` talks to."""
    pool = client.connection_pool
    settings = pool.connection_kwargs
    common = (settings.get("db") or 0, settings.get("username"))
    if isinstance(pool, SentinelConnectionPool):
        return ("sentinel", pool.service_name, sentinel_addresses(pool), *common)
    return ("direct", settings.get("host"), settings.get("port"), settings.get("path"), *common)


def rq_cli_settings(target: RedisTarget | None, *, failover_wait: float) -> dict[str, Any]:
    """The connection settings of `rq worker -c` / `rq cron -c` (`jobs.rq_settings`) for `target`.

    `REDIS_URL` for a URL; RQ's `SENTINEL` settings for sentinels, whose client
    has this factory's timeouts and rides out failovers for `failover_wait` seconds.
    """
    if target is None:
        raise SystemExit(
            "rq needs REDIS_URL or REDIS_SENTINELS with REDIS_SENTINEL_MASTER "
            "(`flask --app wsgi dev` sets REDIS_URL for its embedded Redis)"
        )
    if not target.uses_sentinels:
        return {"REDIS_URL": target.url}
    timeout = 5.0
    options = _connection_options(timeout, "rq")
    return {
        "SENTINEL": {
            "INSTANCES": list(target.sentinels),
            "MASTER_NAME": target.master,
            "DB": target.db,
            "PASSWORD": target.password,
            "SOCKET_TIMEOUT": timeout,
            "SENTINEL_KWARGS": sentinel_options(password=target.sentinel_password, timeout=timeout),
            "CONNECTION_KWARGS": {
                **options,
                "connection_class": MasterConnection,
                "retry": RetryUntil(failover_wait),
            },
        }
    }
