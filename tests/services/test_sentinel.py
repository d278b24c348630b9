"""Redis through Sentinel, on a real master, replica and three sentinels (`redis_sentinel`).

The app's client, the readiness check, the rate limiter and the SSE hub all reach the
master the sentinels name; when it dies they fail with 503s, then find the promoted
replica by themselves. A master demoted under an open connection (READONLY) has its
refusal retried on the new master.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from flask import Flask

from backend import redis_sentinel as redis_sentinel_module
from backend.events import history_after, latest_id, publish
from backend.redis_sentinel import MASTER_CHECK_SECONDS, BlockingSentinelPool
from backend.redis_store import client_from_url, get_redis, redis_target
from backend.sse import Hub, HubUnavailable, Subscriber, hub_for
from tests.support.accounts import USER_EMAIL, login, make_user
from tests.support.sentinel import MASTER_NAME, SentinelCluster

DB = 5


def sentinel_app(make_app: Callable[..., Flask], cluster: SentinelCluster, **extra: Any) -> Flask:
    return make_app(
        REDIS_SENTINELS=cluster.sentinel_addresses, REDIS_SENTINEL_MASTER=MASTER_NAME,
        REDIS_DB=DB, **extra,
    )  # fmt: skip


def on_node(cluster: SentinelCluster, address: tuple[str, int]) -> redis.Redis:
    return redis.Redis(*address, db=DB, socket_timeout=2)


def wait_for(check: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except (redis.ConnectionError, HubUnavailable):
            result = None
        if result:
            return result
        assert time.monotonic() < deadline, "gave up waiting"
        time.sleep(0.05)


def test_the_app_uses_the_master_the_sentinels_name_not_the_url(
    make_app: Callable[..., Flask], redis_sentinel: SentinelCluster, redis_url: str
) -> None:
    app = sentinel_app(make_app, redis_sentinel)
    master = redis_sentinel.master_address()
    assert master is not None
    with app.app_context():
        get_redis().set("greeting", "hello")
        event_id = publish("user:1", "note.created", {"n": 1})
    assert on_node(redis_sentinel, master).get("greeting") == b"hello"
    with app.app_context():
        assert latest_id(on_node(redis_sentinel, master), "user:1") == event_id
    assert client_from_url(redis_url).get("greeting") is None


def test_readiness_and_rate_limits_go_to_the_sentinels_master(
    make_app: Callable[..., Flask], redis_sentinel: SentinelCluster
) -> None:
    app = sentinel_app(make_app, redis_sentinel)
    client = app.test_client()
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.get_json()
    assert ready.get_json()["checks"]["redis"] == "ok"
    with app.app_context():
        make_user(USER_EMAIL)
    assert login(client, USER_EMAIL).access
    master = redis_sentinel.master_address()
    assert master is not None
    assert on_node(redis_sentinel, master).keys("*ratelimit*")  # the login limits' counters

    old = redis_sentinel.kill_master()
    gone = client.get("/readyz")  # the sentinels still name the dead master, or none yet
    assert gone.status_code == 503
    assert gone.get_json()["errors"] == {"redis": "ConnectionError"}
    redis_sentinel.wait_for_failover(old)
    assert wait_for(lambda: client.get("/readyz").status_code == 200)


@pytest.fixture
def hub_app(make_app: Callable[..., Flask], redis_sentinel: SentinelCluster) -> Iterator[Flask]:
    app = sentinel_app(make_app, redis_sentinel)
    yield app
    hub_for(redis_target(app)).close()  # its thread stops instead of calling dead sentinels


def added(hub: Hub, subscriber: Subscriber) -> bool:
    hub.add(subscriber)
    return True


def test_the_sse_hub_reconnects_to_the_new_master_and_history_survives(
    hub_app: Flask, redis_sentinel: SentinelCluster
) -> None:
    with hub_app.app_context():
        hub = hub_for(redis_target(hub_app))
        before = Subscriber(["user:1"], session_id=1, maxsize=10)
        hub.add(before)
        first = publish("user:1", "note.created", {"n": 1})
        assert before.next_event(time.monotonic() + 5).id == first  # type: ignore[union-attr]
        master = redis_sentinel.master_address()
        assert master is not None
        assert on_node(redis_sentinel, master).wait(1, 2000) == 1  # the replica has it

        old = redis_sentinel.kill_master()
        wait_for(lambda: before.ended == "redis_disconnected", timeout=10)
        redis_sentinel.wait_for_failover(old)

        after = Subscriber(["user:1"], session_id=2, maxsize=10)
        wait_for(lambda: added(hub, after))
        second = publish("user:1", "note.created", {"n": 2})
        assert after.next_event(time.monotonic() + 5).id == second  # type: ignore[union-attr]
        events, complete = history_after(get_redis(), "user:1", first, limit=10)
        assert complete
        assert [e.id for e in events] == [second]
        hub.remove(after)


def test_a_demoted_master_refusal_is_retried_once_on_the_new_master(
    make_app: Callable[..., Flask], redis_sentinel: SentinelCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The pool's own check would leave the old master first; here it does not get the chance
    # (as for a connection taken just before the failover).
    monkeypatch.setattr(redis_sentinel_module, "MASTER_CHECK_SECONDS", 3600.0)
    app = sentinel_app(make_app, redis_sentinel)
    with app.app_context():
        client = get_redis()
        client.set("before", "1")  # a pooled connection to the master, kept open
        old = redis_sentinel.master_address()
        assert old is not None
        redis_sentinel.sentinels[0].client().execute_command("SENTINEL", "FAILOVER", MASTER_NAME)
        new = redis_sentinel.wait_for_failover(old)
        # What the sentinels do to the old master a few seconds later, done now.
        redis_sentinel.node_at(old).client().replicaof(*new)
        redis_sentinel.wait_until_agreed(expect_master=new)  # every sentinel names the new one
        assert client.set("after", "2")  # READONLY on the old master, then done on the new
        assert on_node(redis_sentinel, new).get("after") == b"2"
        pool = client.connection_pool
        assert isinstance(pool, BlockingSentinelPool)
        assert pool.master_address == new


def test_a_manual_failover_moves_the_app_and_the_hub_before_the_old_master_is_demoted(
    hub_app: Flask, redis_sentinel: SentinelCluster
) -> None:
    with hub_app.app_context():
        client = get_redis()
        client.set("before", "1")
        hub = hub_for(redis_target(hub_app))
        first = Subscriber(["user:1"], session_id=1, maxsize=10)
        hub.add(first)
        old = redis_sentinel.master_address()
        assert old is not None
        redis_sentinel.sentinels[0].client().execute_command("SENTINEL", "FAILOVER", MASTER_NAME)
        new = redis_sentinel.wait_for_failover(old, everyone=True)
        assert redis_sentinel.node_at(old).client().info("replication")["role"] == "master"

        wait_for(lambda: first.ended == "redis_disconnected", timeout=5)  # the hub left it
        time.sleep(MASTER_CHECK_SECONDS)
        client.set("after", "2")  # the pool asked the sentinels again: the new master
        assert on_node(redis_sentinel, new).get("after") == b"2"
        assert on_node(redis_sentinel, old).get("after") is None
        second = Subscriber(["user:1"], session_id=2, maxsize=10)
        wait_for(lambda: added(hub, second))
        event_id = publish("user:1", "note.created", {"n": 2})
        assert second.next_event(time.monotonic() + 5).id == event_id  # type: ignore[union-attr]
        hub.remove(second)


def test_a_url_that_now_names_a_replica_answers_503_not_500(
    make_app: Callable[..., Flask], redis_sentinel: SentinelCluster
) -> None:
    replica = next(node for node in redis_sentinel.nodes if node.name == "replica")
    app = make_app(REDIS_URL=f"redis://127.0.0.1:{replica.port}/{DB}")
    client = app.test_client()
    with app.app_context():
        make_user(USER_EMAIL)
    signed_in = login(client, USER_EMAIL)  # sessions fall back to the database
    ticket = client.post("/api/v1/events/ticket", headers=signed_in.headers)  # a Redis write
    assert ticket.status_code == 503
    assert ticket.get_json()["error"] == "service_unavailable"
