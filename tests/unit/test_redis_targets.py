"""Which Redis each client is built for: sentinels when they are set, `REDIS_URL` otherwise.

Nothing here talks to a server (the clients connect lazily); the tests that do,
on a real master, replica and sentinels, are in `tests/services/test_sentinel.py`.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
from flask import Flask
from rq.cli.helpers import get_redis_from_config

from backend.api.jobs_dashboard import dashboard_settings
from backend.ratelimit import storage_for
from backend.redis_sentinel import (
    RETRY_DEMOTED,
    BlockingSentinelPool,
    MasterConnection,
    MasterDemoted,
    RetryUntil,
)
from backend.redis_store import (
    RedisTarget,
    client_for,
    redis_target,
    ride_out_failovers,
    rq_cli_settings,
    server_of,
)
from backend.sse import hub_for

SENTINELS = (("10.1.0.1", 26379), ("10.1.0.2", 26379))
TARGET = RedisTarget(
    sentinels=SENTINELS, master="shop", db=3, password="pw", sentinel_password="spw"
)


def sentinel_config(**extra: Any) -> dict[str, Any]:
    return {"REDIS_SENTINELS": list(SENTINELS), "REDIS_SENTINEL_MASTER": "shop", **extra}


def test_sentinels_take_precedence_over_the_url(make_app: Callable[..., Flask]) -> None:
    app = make_app(**sentinel_config(REDIS_DB=3))
    target = redis_target(app)
    assert target == RedisTarget(sentinels=SENTINELS, master="shop", db=3)
    assert target.describe() == "sentinels 10.1.0.1:26379,10.1.0.2:26379, master 'shop', db 3"


def test_without_sentinels_the_url_is_used(make_app: Callable[..., Flask], redis_url: str) -> None:
    target = redis_target(make_app())
    assert target == RedisTarget(url=redis_url)
    assert not target.uses_sentinels
    assert target.describe() == redis_url


def test_the_app_client_goes_through_the_sentinels(make_app: Callable[..., Flask]) -> None:
    app = make_app(**sentinel_config(REDIS_DB=3, REDIS_PASSWORD="pw"))
    with app.app_context():
        from backend.redis_store import get_redis

        pool = get_redis().connection_pool
    assert isinstance(pool, BlockingSentinelPool)
    assert (pool.service_name, pool.max_connections, pool.timeout) == ("shop", 20, 5.0)
    assert pool.connection_class is MasterConnection
    settings = pool.connection_kwargs
    assert (settings["db"], settings["password"], settings["socket_timeout"]) == (3, "pw", 5.0)
    assert settings["retry"] is RETRY_DEMOTED


def test_a_url_client_keeps_its_plain_bounded_pool(redis_url: str) -> None:
    pool = client_for(RedisTarget(url=redis_url), timeout=2.0, max_connections=3).connection_pool
    assert type(pool) is redis.BlockingConnectionPool
    assert (pool.max_connections, pool.timeout) == (3, 2.0)


def test_the_sentinels_are_asked_with_their_own_password_and_timeouts() -> None:
    pool = client_for(TARGET, timeout=1.5).connection_pool
    assert isinstance(pool, BlockingSentinelPool)
    for sentinel in pool.sentinel_manager.sentinels:
        settings = sentinel.connection_pool.connection_kwargs
        assert (settings["password"], settings["socket_timeout"]) == ("spw", 1.5)
    assert pool.connection_kwargs["password"] == "pw"


def test_the_sse_hub_uses_the_same_target() -> None:
    hub = hub_for(TARGET)
    assert hub is hub_for(TARGET)
    pool = hub._client.connection_pool
    assert isinstance(pool, BlockingSentinelPool)
    assert pool.max_connections == 2
    assert hub_for("redis://127.0.0.1:1/0") is not hub


def test_the_rate_limiter_storage_names_the_sentinels() -> None:
    uri, options = storage_for(TARGET)
    assert uri == "redis+sentinel://10.1.0.1:26379,10.1.0.2:26379/shop"
    assert options["db"] == 3
    assert options["password"] == "pw"
    assert options["use_replicas"] is False
    sentinel_options = options["sentinel_kwargs"]
    assert isinstance(sentinel_options, dict)
    assert (sentinel_options["password"], sentinel_options["socket_timeout"]) == ("spw", 5.0)
    assert sentinel_options["retry"].get_retries() == 0
    assert storage_for(RedisTarget(url="unix:///tmp/r.sock")) == ("redis+unix:///tmp/r.sock", {})


def test_the_app_gives_the_limiter_the_sentinel_storage(make_app: Callable[..., Flask]) -> None:
    from backend.ratelimit import limiter

    app = make_app(**sentinel_config())
    assert app.config["RATELIMIT_STORAGE_URI"].startswith("redis+sentinel://10.1.0.1:26379,")
    assert type(limiter._storage).__name__ == "RedisSentinelStorage"
    make_app()  # options do not leak into the next app's (plain) storage
    assert type(limiter._storage).__name__ == "RedisStorage"


def test_the_jobs_dashboard_is_pointed_at_the_sentinels() -> None:
    settings = dashboard_settings(TARGET)
    assert settings["RQ_DASHBOARD_REDIS_URL"] == (
        "redis+sentinel://10.1.0.1:26379,10.1.0.2:26379/shop/3"
    )
    assert settings["RQ_DASHBOARD_REDIS_SENTINEL_PASSWORD"] == "spw"
    assert settings["RQ_DASHBOARD_REDIS_PASSWORD"] == "pw"
    assert dashboard_settings(RedisTarget(url="redis://h:1/2"))["RQ_DASHBOARD_REDIS_URL"] == (
        "redis://h:1/2"
    )


def test_rq_builds_its_connection_through_the_sentinels_from_our_settings() -> None:
    settings = rq_cli_settings(TARGET, failover_wait=12.0)
    assert "REDIS_URL" not in settings
    client = get_redis_from_config(settings)  # what `rq worker -c jobs.rq_settings` does
    pool = client.connection_pool
    assert pool.service_name == "shop"
    assert pool.connection_class is MasterConnection
    assert (pool.connection_kwargs["db"], pool.connection_kwargs["password"]) == (3, "pw")
    assert pool.connection_kwargs["retry"] == RetryUntil(12.0)
    assert server_of(client) == server_of(client_for(TARGET))


def test_rq_gets_the_url_without_sentinels_and_refuses_nothing_at_all() -> None:
    assert rq_cli_settings(RedisTarget(url="redis://h:1/2"), failover_wait=1) == {
        "REDIS_URL": "redis://h:1/2"
    }
    with pytest.raises(SystemExit, match="rq needs REDIS_URL or REDIS_SENTINELS"):
        rq_cli_settings(None, failover_wait=1)


def test_server_of_tells_masters_and_databases_apart() -> None:
    def server(**target: Any) -> tuple[Any, ...]:
        return server_of(client_for(RedisTarget(**target)))

    same = server(sentinels=SENTINELS, master="shop", db=3)
    assert server(sentinels=SENTINELS[::-1], master="shop", db=3) == same
    assert server(sentinels=SENTINELS, master="other", db=3) != same
    assert server(sentinels=SENTINELS, master="shop", db=4) != same
    assert server(url="redis://10.1.0.1:26379/3") != same


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again: nothing listens there


def test_a_worker_client_retries_until_its_budget_is_spent() -> None:
    client = client_for(RedisTarget(url=f"redis://127.0.0.1:{closed_port()}/0"), timeout=0.5)
    ride_out_failovers(client, seconds=0.6)
    started = time.monotonic()
    with pytest.raises(redis.ConnectionError):
        client.ping()
    assert 0.6 <= time.monotonic() - started < 3.0


def test_a_web_client_does_not_retry_a_refused_connection() -> None:
    client = client_for(
        RedisTarget(sentinels=(("127.0.0.1", closed_port()),), master="shop"), timeout=0.5
    )
    started = time.monotonic()
    with pytest.raises(redis.ConnectionError, match="No master found"):
        client.ping()
    assert time.monotonic() - started < 0.5
    assert RETRY_DEMOTED._supported_errors == (MasterDemoted,)
    assert RetryUntil(1.0) != RETRY_DEMOTED
    assert hash(RetryUntil(1.0)) == hash(RetryUntil(1.0))


def test_retry_until_also_honours_the_caller_s_own_verdict() -> None:
    calls: list[Exception] = []

    def refuse() -> None:
        raise redis.ConnectionError("refused")

    with pytest.raises(redis.ConnectionError):
        RetryUntil(5.0).call_with_retry(refuse, calls.append, is_retryable=lambda error: False)
    assert calls == []  # not retried, and so not failed over either
