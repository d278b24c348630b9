"""Round trips shared between callers: each gets exactly its replies, errors stay its own."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from flask import Flask

from backend.optimizations.round_trips import SharedRoundTrips
from backend.redis_store import ROUND_TRIPS, get_redis, round_trip


@pytest.fixture
def fast_app(make_app: Callable[..., Flask]) -> Iterator[Flask]:
    app = make_app(OPTIMIZATIONS=True)
    with app.app_context():
        yield app


def test_the_layer_installs_it_and_round_trip_uses_it(fast_app: Flask) -> None:
    assert isinstance(fast_app.extensions[ROUND_TRIPS], SharedRoundTrips)
    get_redis().set("k", "v")
    assert round_trip(get_redis(), [("GET", "k"), ("EXISTS", "k")]) == [b"v", 1]


def test_many_callers_at_once_each_get_their_own_replies(fast_app: Flask) -> None:
    client = get_redis()
    for n in range(40):
        client.set(f"key:{n}", n)
    results: dict[int, list[Any]] = {}
    start = threading.Barrier(40)
    shared: SharedRoundTrips = fast_app.extensions[ROUND_TRIPS]
    before = shared.batches_sent

    def caller(n: int) -> None:
        with fast_app.app_context():
            start.wait()
            results[n] = round_trip(get_redis(), [("GET", f"key:{n}"), ("INCR", f"count:{n}")])

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert results == {n: [str(n).encode(), 1] for n in range(40)}
    assert shared.batches_sent - before < 40  # some callers shared a round trip


def test_a_refused_command_fails_only_its_caller(fast_app: Flask) -> None:
    client = get_redis()
    client.set("text", "not a number")
    outcomes: dict[str, Any] = {}
    start = threading.Barrier(2)

    def bad() -> None:
        with fast_app.app_context():
            start.wait()
            try:
                round_trip(get_redis(), [("INCR", "text")])
            except redis.ResponseError as exc:
                outcomes["bad"] = exc

    def good() -> None:
        with fast_app.app_context():
            start.wait()
            outcomes["good"] = round_trip(get_redis(), [("GET", "text")])

    threads = [threading.Thread(target=bad), threading.Thread(target=good)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert isinstance(outcomes["bad"], redis.ResponseError)
    assert outcomes["good"] == [b"not a number"]


def test_a_connection_error_reaches_every_caller_of_the_batch(fast_app: Flask) -> None:
    fast_app.extensions["redis"] = redis.Redis(host="127.0.0.1", port=1)  # nothing listens
    try:
        with pytest.raises(redis.ConnectionError):
            round_trip(get_redis(), [("GET", "k")])
    finally:
        del fast_app.extensions["redis"]


def test_other_clients_and_empty_batches_go_straight(fast_app: Flask, redis_url: str) -> None:
    other = redis.Redis.from_url(redis_url)
    other.set("k", "direct")
    assert round_trip(other, [("GET", "k")]) == [b"direct"]
    assert round_trip(get_redis(), []) == []
