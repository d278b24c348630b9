"""The events seam: streams per channel, published only after commit."""

from __future__ import annotations

from flask import Flask

from backend.db import db
from backend.events import live_channel, publish, publish_after_commit, stream_key
from backend.models import User
from backend.redis_store import get_redis
from tests.support.helpers import stream_events


def test_publish_appends_to_the_channel_stream_and_returns_its_id(app: Flask) -> None:
    first = publish("products", "product.updated", {"id": 1, "stock": 4})
    second = publish("products", "product.updated", {"id": 1, "stock": 3})
    assert tuple(map(int, first.split("-"))) < tuple(map(int, second.split("-")))
    assert stream_events("products") == [
        ("product.updated", {"id": 1, "stock": 4}),
        ("product.updated", {"id": 1, "stock": 3}),
    ]
    assert 0 < get_redis().ttl(stream_key("products")) <= 24 * 3600


def test_publish_wakes_subscribers(app: Flask) -> None:
    pubsub = get_redis().pubsub()
    pubsub.subscribe(live_channel("user:7"))
    subscribed = pubsub.get_message(timeout=1)
    assert subscribed is not None
    assert subscribed["type"] == "subscribe"
    publish("user:7", "order.created", {"id": 3})
    message = pubsub.get_message(timeout=1)
    pubsub.close()
    assert message is not None
    event_id, kind, data = message["data"].decode().split("\n")
    assert (kind, data) == ("order.created", '{"id":3}')
    assert stream_events("user:7") == [("order.created", {"id": 3})]


def test_history_is_capped(app: Flask) -> None:
    app.config["EVENTS_MAXLEN"] = 10
    for n in range(500):
        publish("admin", "tick", {"n": n})
    assert get_redis().xlen(stream_key("admin")) < 200


def test_events_wait_for_the_commit(app: Flask) -> None:
    with db.atomic():
        User.create(email="c@example.test", password_hash="x")
        publish_after_commit("admin", "user.created", {"email": "c@example.test"})
        assert stream_events("admin") == []
    assert stream_events("admin") == [("user.created", {"email": "c@example.test"})]


def test_rolled_back_transactions_publish_nothing(app: Flask) -> None:
    with db.atomic() as transaction:
        publish_after_commit("admin", "user.created", {"email": "d@example.test"})
        transaction.rollback()
    assert stream_events("admin") == []


def test_outside_a_transaction_events_go_out_at_once(app: Flask) -> None:
    publish_after_commit("admin", "ping", {})
    assert stream_events("admin") == [("ping", {})]
