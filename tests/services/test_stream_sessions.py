"""Which of the open streams' sessions have ended: asked for all of them at once.

Redis answers for the sessions it caches, the database for the others (and
fills the cache), and for all of them when Redis is unreachable.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
import redis
from flask import Flask

from backend.models import AuthSession, User
from backend.redis_store import get_redis
from backend.services import sessions
from backend.services.audit import ClientInfo
from tests.support.accounts import make_user

CLIENT = ClientInfo(ip="127.0.0.1", user_agent="test", request_id="")


@pytest.fixture
def ada(app: Flask) -> User:
    return make_user("ada@example.test")


def open_sessions(user: User, count: int) -> list[int]:
    return [
        int(sessions.create(user=user, device_name=f"d{n}", client=CLIENT).id) for n in range(count)
    ]


def test_the_cache_answers_for_the_sessions_it_holds(ada: User) -> None:
    live, revoked = open_sessions(ada, 2)
    get_redis().set(sessions.state_key(live), sessions.ACTIVE)
    sessions.revoke_where(AuthSession.user == ada.id, reason="test")  # both rows now revoked...
    get_redis().set(sessions.state_key(live), sessions.ACTIVE)  # ...the cache says otherwise
    assert sessions.ended_among({live, revoked}) == {revoked}


def test_the_database_answers_for_the_others_and_the_cache_is_filled(ada: User) -> None:
    live, revoked = open_sessions(ada, 2)
    sessions.revoke_where(AuthSession.id == revoked, reason="test")
    get_redis().delete(sessions.state_key(live), sessions.state_key(revoked))
    assert sessions.ended_among([live, revoked, 4242]) == {revoked, 4242}  # 4242: no such row
    states = get_redis().mget([sessions.state_key(s) for s in (live, revoked, 4242)])
    assert states == [sessions.ACTIVE, sessions.REVOKED, sessions.REVOKED]


def test_more_sessions_than_a_batch_are_all_answered(ada: User) -> None:
    ids = open_sessions(ada, 3)
    get_redis().delete(*[sessions.state_key(s) for s in ids])
    unknown = set(range(10_000, 10_000 + sessions.BATCH + 5))
    assert sessions.ended_among(set(ids) | unknown) == unknown


@contextlib.contextmanager
def redis_down(app: Flask) -> Iterator[None]:
    app.extensions["redis"] = redis.Redis(host="127.0.0.1", port=1)  # nothing listens
    try:
        yield
    finally:
        del app.extensions["redis"]


def test_without_redis_the_database_answers_for_all(ada: User, app: Flask) -> None:
    live, revoked = open_sessions(ada, 2)
    sessions.revoke_where(AuthSession.id == revoked, reason="test")
    get_redis().set(sessions.state_key(revoked), sessions.ACTIVE)  # unseen: Redis is down
    with redis_down(app):
        assert sessions.ended_among({live, revoked}) == {revoked}
