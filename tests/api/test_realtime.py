"""Live events: authorization, live delivery, replay with Last-Event-ID, reset, tickets, ending."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from backend.events import publish, stream_key
from backend.redis_store import RedisTarget, get_redis, redis_url
from backend.sse import Hub, HubUnavailable, Subscriber, hub_for
from backend.streaming import decode_cursor, encode_cursor
from tests.support.accounts import Login, login, make_user
from tests.support.helpers import assert_error
from tests.support.sse import Frame, frames, take

API = "/api/v1"
FAST = {"SSE_HEARTBEAT_SECONDS": 1, "SSE_RETRY_MS": 500}


@pytest.fixture
def sse_app(make_app: Callable[..., Flask]) -> Iterator[Flask]:
    app = make_app(**FAST)
    with app.app_context():
        yield app


@pytest.fixture
def sse_client(sse_app: Flask) -> FlaskClient:
    return sse_app.test_client()


@pytest.fixture
def ada(sse_client: FlaskClient) -> Login:
    make_user("ada@example.test")
    return login(sse_client, "ada@example.test")


def open_stream(
    client: FlaskClient, who: Login | None, query: str = "", last_event_id: str | None = None
) -> Generator[Frame, None, None]:
    headers = dict(who.headers) if who else {}
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    response = client.get(f"{API}/events{query}", headers=headers, buffered=False)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/event-stream"
    assert response.headers["X-Accel-Buffering"] == "no"
    assert response.headers["Cache-Control"] == "no-cache"
    stream = frames(response.response)
    first = next(stream)
    assert first.retry == 500
    return stream


def test_a_stream_needs_authentication(sse_client: FlaskClient) -> None:
    assert_error(sse_client.get(f"{API}/events"), 401, "unauthorized")


@pytest.mark.parametrize("topics", ["user:999", "admin", "secret", "products,admin"])
def test_unreadable_channels_are_403_before_the_stream(
    sse_client: FlaskClient, ada: Login, topics: str
) -> None:
    response = sse_client.get(f"{API}/events?topics={topics}", headers=ada.headers)
    assert_error(response, 403, "forbidden")


def test_live_events_of_the_users_channel_and_topics_arrive(
    sse_app: Flask, sse_client: FlaskClient, ada: Login
) -> None:
    stream = open_stream(sse_client, ada, f"?topics=products,user:{ada.user_id}")
    publish("user:999", "order.created", {"id": 1})  # someone else's: never delivered
    publish("products", "product.updated", {"id": 7, "stock": 3})
    publish(f"user:{ada.user_id}", "order.created", {"id": 2})
    got = take(stream, 2)
    assert [(f.event, f.json) for f in got] == [
        ("product.updated", {"id": 7, "stock": 3}),
        ("order.created", {"id": 2}),
    ]
    cursor = decode_cursor(got[-1].id)
    assert cursor is not None
    assert set(cursor) == {"products", f"user:{ada.user_id}"}


def test_admins_may_read_the_admin_channel(sse_client: FlaskClient) -> None:
    make_user("root@example.test", role="admin")
    root = login(sse_client, "root@example.test")
    stream = open_stream(sse_client, root, "?topics=admin")
    publish("admin", "order.created", {"id": 5})
    assert take(stream, 1)[0].event == "order.created"


def test_reconnecting_with_last_event_id_replays_exactly_what_was_missed(
    sse_client: FlaskClient, ada: Login
) -> None:
    stream = open_stream(sse_client, ada, "?topics=products")
    publish("products", "product.updated", {"n": 0})
    last_seen = take(stream, 1)[0].id
    stream.close()
    for n in range(1, 101):
        publish("products", "product.updated", {"n": n})
    resumed = open_stream(sse_client, ada, "?topics=products", last_event_id=last_seen)
    replayed = take(resumed, 100)
    assert [f.json["n"] for f in replayed] == list(range(1, 101))
    publish("products", "product.updated", {"n": 101})
    assert take(resumed, 1)[0].json == {"n": 101}  # live after replay, no duplicate, no gap


def test_last_event_id_also_works_as_a_query_parameter(sse_client: FlaskClient, ada: Login) -> None:
    first = publish("products", "product.updated", {"n": 1})
    publish("products", "product.updated", {"n": 2})
    cursor = encode_cursor({"products": first, f"user:{ada.user_id}": "0-0"})
    stream = open_stream(sse_client, ada, f"?topics=products&last_event_id={cursor}")
    assert take(stream, 1)[0].json == {"n": 2}


@pytest.mark.parametrize(
    "last_event_id",
    [
        "garbage",
        "products=1-0",
        "products=abc",
        f"products={2**64}-0",
        f"products=1-{10**30}",
        "products=-1-0",
        "products=1_000-0",
        "products= 12-0",
        "products=١٢-0",  # Arabic-Indic digits: int() takes them, Redis does not
        "=,=,=",
    ],
)
def test_unknown_or_garbled_ids_start_with_stream_reset(
    sse_client: FlaskClient, ada: Login, last_event_id: str
) -> None:
    publish("products", "product.updated", {"n": 1})
    stream = open_stream(sse_client, ada, "?topics=products", last_event_id=last_event_id)
    reset = take(stream, 1)[0]
    assert reset.event == "stream.reset"
    assert "products" in reset.json["channels"]
    publish("products", "product.updated", {"n": 2})
    assert take(stream, 1)[0].json == {"n": 2}


def test_an_id_older_than_the_kept_history_starts_with_stream_reset(
    sse_client: FlaskClient, ada: Login
) -> None:
    old = publish("products", "product.updated", {"n": 0})
    for n in range(1, 20):
        publish("products", "product.updated", {"n": n})
    get_redis().xtrim(stream_key("products"), maxlen=5, approximate=False)
    cursor = encode_cursor({"products": old})
    stream = open_stream(sse_client, ada, "?topics=products", last_event_id=cursor)
    assert take(stream, 1)[0].event == "stream.reset"


def test_a_client_that_saw_nothing_is_reset_only_if_history_was_trimmed(
    sse_client: FlaskClient, ada: Login
) -> None:
    for n in range(3):
        publish("products", "product.updated", {"n": n})
    stream = open_stream(sse_client, ada, "?topics=products", last_event_id="products=0-0")
    assert [f.json["n"] for f in take(stream, 3)] == [0, 1, 2]
    get_redis().xtrim(stream_key("products"), maxlen=1, approximate=False)
    trimmed = open_stream(sse_client, ada, "?topics=products", last_event_id="products=0-0")
    assert take(trimmed, 1)[0].event == "stream.reset"


def test_tickets_open_one_stream_once(sse_client: FlaskClient, ada: Login) -> None:
    issued = sse_client.post(f"{API}/events/ticket", headers=ada.headers).get_json()
    assert issued["expires_in"] == 60
    stream = open_stream(sse_client, None, f"?ticket={issued['ticket']}")
    publish(f"user:{ada.user_id}", "notification.created", {"id": 1})
    assert take(stream, 1)[0].event == "notification.created"
    again = sse_client.get(f"{API}/events?ticket={issued['ticket']}")
    assert_error(again, 401, "invalid_ticket")


def test_a_ticket_of_a_revoked_session_is_refused(sse_client: FlaskClient, ada: Login) -> None:
    ticket = sse_client.post(f"{API}/events/ticket", headers=ada.headers).get_json()["ticket"]
    sse_client.post(f"{API}/auth/logout", headers=ada.headers)
    assert_error(sse_client.get(f"{API}/events?ticket={ticket}"), 401, "token_revoked")


def test_signing_out_ends_the_stream(sse_client: FlaskClient, ada: Login) -> None:
    stream = open_stream(sse_client, ada)
    sse_client.post(f"{API}/auth/logout", headers=ada.headers)
    assert list(stream) == []  # the stream ends instead of waiting for events


def test_a_client_that_cannot_keep_up_is_dropped(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(**FAST, SSE_QUEUE_SIZE=3)
    client = app.test_client()
    make_user("ada@example.test")
    ada = login(client, "ada@example.test")
    with app.app_context():
        stream = open_stream(client, ada, "?topics=products")
        for n in range(10):
            publish("products", "product.updated", {"n": n})
        hub = hub_for(redis_url())
        deadline = time.monotonic() + 5
        while hub.subscriber_count() and time.monotonic() < deadline:
            list(stream)
    assert hub.subscriber_count() == 0


def test_streams_end_after_their_maximum_lifetime(make_app: Callable[..., Flask]) -> None:
    app = make_app(**FAST, SSE_MAX_LIFETIME_SECONDS=1)
    client = app.test_client()
    make_user("ada@example.test")
    ada = login(client, "ada@example.test")
    with app.app_context():
        assert list(open_stream(client, ada)) == []


def test_closing_the_hub_ends_every_stream_with_a_retry_hint(
    sse_app: Flask, sse_client: FlaskClient, ada: Login
) -> None:
    stream = open_stream(sse_client, ada)
    hub_for(redis_url()).close()  # what a worker's SIGTERM does
    (hint,) = list(stream)  # no event: only when to reconnect, spread over 50-500 ms
    assert hint.event is None
    assert hint.retry is not None
    assert 50 <= hint.retry <= 500


def test_a_closing_hub_takes_no_new_stream(sse_app: Flask) -> None:
    hub = Hub(RedisTarget(url=redis_url()))
    hub.close()
    with pytest.raises(HubUnavailable, match="shutting down"):
        hub.add(Subscriber(["products"], session_id=1, maxsize=1))
    assert hub.subscriber_count() == 0


def test_a_draining_process_refuses_new_streams_so_they_open_elsewhere(
    sse_client: FlaskClient, ada: Login, draining_process: None
) -> None:
    response = sse_client.get(f"{API}/events", headers=ada.headers)
    assert_error(response, 503, "draining")
    assert response.headers["Retry-After"] == "1"


def test_channels_are_subscribed_once_and_released_after_the_last_reader(
    sse_client: FlaskClient, ada: Login
) -> None:
    first = open_stream(sse_client, ada, "?topics=products")
    second = open_stream(sse_client, ada, "?topics=products")
    redis = get_redis()
    assert redis.pubsub_numsub("events:live:products") == [(b"events:live:products", 1)]
    first.close()
    second.close()
    hub = hub_for(redis_url())
    deadline = time.monotonic() + 5
    while redis.pubsub_numsub("events:live:products")[0][1] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert redis.pubsub_numsub("events:live:products") == [(b"events:live:products", 0)]
    assert hub.subscriber_count() == 0
