"""A role change re-authorises open streams at once: a demoted admin keeps no `admin` channel."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient

from backend.events import publish
from tests.support.accounts import Login, login, make_user
from tests.support.helpers import assert_error
from tests.support.sse import Frame, frames, take

API = "/api/v1"


@pytest.fixture
def sse_app(make_app: Callable[..., Flask]) -> Iterator[Flask]:
    app = make_app(SSE_HEARTBEAT_SECONDS=1, SSE_RETRY_MS=500)
    with app.app_context():
        yield app


def open_admin_stream(client: FlaskClient, who: Login) -> Iterator[Frame]:
    response = client.get(f"{API}/events?topics=admin", headers=who.headers, buffered=False)
    assert response.status_code == 200, response.get_data(as_text=True)
    stream = frames(response.response)
    next(stream)  # retry:
    return stream


def drain_in_background(stream: Iterator[Frame]) -> threading.Thread:
    reader = threading.Thread(target=lambda: list(stream), daemon=True)
    reader.start()
    return reader


@pytest.mark.parametrize("change", [{"role": "user"}, {"is_active": False}])
def test_a_demoted_or_deactivated_admins_stream_ends_at_once(
    sse_app: Flask, change: dict[str, object]
) -> None:
    client = sse_app.test_client()
    make_user("boss@example.test", role="admin")
    make_user("deputy@example.test", role="admin")
    boss, deputy = login(client, "boss@example.test"), login(client, "deputy@example.test")
    stream = open_admin_stream(client, deputy)
    publish("admin", "order.created", {"n": 1})
    assert take(stream, 1)[0].json == {"n": 1}

    reader = drain_in_background(stream)
    response = client.patch(f"{API}/users/{deputy.user_id}", json=change, headers=boss.headers)
    assert response.status_code == 200
    reader.join(timeout=5)
    assert not reader.is_alive(), "the stream kept the admin channel after the change"
    if "role" in change:
        again = client.get(f"{API}/events?topics=admin", headers=deputy.headers)
        assert_error(again, 403, "forbidden")


def test_a_change_that_keeps_the_role_leaves_streams_open(sse_app: Flask) -> None:
    client = sse_app.test_client()
    make_user("boss@example.test", role="admin")
    make_user("deputy@example.test", role="admin")
    boss, deputy = login(client, "boss@example.test"), login(client, "deputy@example.test")
    stream = open_admin_stream(client, deputy)
    response = client.patch(
        f"{API}/users/{deputy.user_id}", json={"role": "admin"}, headers=boss.headers
    )
    assert response.status_code == 200
    publish("admin", "order.created", {"n": 2})
    assert take(stream, 1)[0].json == {"n": 2}
