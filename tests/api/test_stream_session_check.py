"""A stream whose session ended unannounced still ends: each process checks its streams."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_jwt_extended import decode_token

from backend.redis_store import get_redis, redis_target
from backend.services import sessions
from backend.sse import hub_for
from tests.support.accounts import Login, login, make_user
from tests.support.sse import Frame, frames

API = "/api/v1"


@pytest.fixture
def sse_app(make_app: Callable[..., Flask]) -> Iterator[Flask]:
    app = make_app(SSE_HEARTBEAT_SECONDS=1, SSE_SESSION_CHECK_SECONDS=1)
    with app.app_context():
        yield app


def open_stream(client: FlaskClient, who: Login) -> Iterator[Frame]:
    response = client.get(f"{API}/events", headers=who.headers, buffered=False)
    assert response.status_code == 200, response.get_data(as_text=True)
    stream = frames(response.response)
    next(stream)  # retry:
    return stream


def read_in_background(stream: Iterator[Frame]) -> threading.Thread:
    reader = threading.Thread(target=lambda: list(stream), daemon=True)
    reader.start()
    return reader


def test_the_stream_of_a_session_revoked_unannounced_ends_and_the_others_go_on(
    sse_app: Flask,
) -> None:
    client = sse_app.test_client()
    make_user("ada@example.test")
    gone, kept = login(client, "ada@example.test"), login(client, "ada@example.test")
    gone_reader = read_in_background(open_stream(client, gone))
    kept_reader = read_in_background(open_stream(client, kept))
    # Written as revocation writes it, but with no push on the revocation channel.
    sid = decode_token(gone.access)["sid"]
    get_redis().set(sessions.state_key(sid), sessions.REVOKED)
    gone_reader.join(timeout=5)
    assert not gone_reader.is_alive(), "the revoked session's stream was not ended"
    assert kept_reader.is_alive()
    kept_reader.join(timeout=1.5)  # another check or two
    assert kept_reader.is_alive()
    # Ended here: a stream left open would go on being checked, against the next test's database.
    hub_for(redis_target(sse_app)).end_sessions({decode_token(kept.access)["sid"]}, "test over")
    kept_reader.join(timeout=5)
    assert not kept_reader.is_alive()
