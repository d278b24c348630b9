"""Who may open a stream is answered from Redis: the session's state and the user's cached role.

The database is read only for what Redis does not hold, and every change of
role or activity rewrites the cache after commit, so a stream opened right
after a change sees it.
"""

from __future__ import annotations

from collections.abc import Iterator

import peewee
import pytest
from flask import Flask

from backend.db import db
from backend.errors import Unauthorized
from backend.models import User
from backend.redis_store import get_redis
from backend.services import realtime, roles, sessions, users
from backend.services.audit import ClientInfo
from tests.support.accounts import make_user

CLIENT = ClientInfo(ip="127.0.0.1", user_agent="test", request_id="")


@pytest.fixture
def ctx(app: Flask) -> Iterator[None]:
    with app.app_context():
        yield


@pytest.fixture
def ada(ctx: None) -> User:
    return make_user("ada@example.test")


def open_session(user: User) -> int:
    return int(sessions.create(user=user, device_name="test", client=CLIENT).id)


def test_the_role_is_read_from_the_database_once_then_from_redis(ada: User) -> None:
    sid = open_session(ada)
    assert realtime.listener(user_id=ada.id, session_id=sid).role == "user"
    assert get_redis().get(roles.role_key(ada.id)) == b"user"
    # A row changed behind the services' back is not seen until the cache expires:
    # only the services change roles, and they rewrite the cache.
    User.update(role="admin").where(User.id == ada.id).execute()
    assert realtime.listener(user_id=ada.id, session_id=sid).role == "user"


def test_a_role_change_is_seen_by_the_next_stream(ada: User) -> None:
    admin = make_user("root@example.test", role="admin")
    sid = open_session(ada)
    realtime.listener(user_id=ada.id, session_id=sid)  # cached as "user"
    users.update_user(actor=admin, user_id=ada.id, role="admin", client=CLIENT)
    assert realtime.listener(user_id=ada.id, session_id=sid).role == "admin"
    assert realtime.channels_for(
        listener=realtime.listener(user_id=ada.id, session_id=sid), topics=["admin"]
    ) == [f"user:{ada.id}", "admin"]


def test_a_deactivated_user_is_refused_even_with_a_live_session_cached(ada: User) -> None:
    admin = make_user("root@example.test", role="admin")
    sid = open_session(ada)
    realtime.listener(user_id=ada.id, session_id=sid)
    users.update_user(actor=admin, user_id=ada.id, is_active=False, client=CLIENT)
    get_redis().set(sessions.state_key(sid), sessions.ACTIVE)  # as if the revocation were lost
    with pytest.raises(Unauthorized, match="deactivated"):
        realtime.listener(user_id=ada.id, session_id=sid)
    assert get_redis().get(roles.role_key(ada.id)) == roles.NO_ROLE


def test_a_missing_user_is_refused_and_remembered_as_such(ctx: None) -> None:
    with pytest.raises(Unauthorized, match="no longer exists"):
        roles_listener(user_id=4242)
    assert get_redis().get(roles.role_key(4242)) == roles.NO_ROLE


def roles_listener(user_id: int) -> realtime.Listener:
    get_redis().set(sessions.state_key(1), sessions.ACTIVE)
    return realtime.listener(user_id=user_id, session_id=1)


def test_a_revoked_session_is_refused_from_the_cache(ada: User) -> None:
    sid = open_session(ada)
    sessions.revoke_all_for(ada, reason="test")
    with pytest.raises(Unauthorized) as refused:
        realtime.listener(user_id=ada.id, session_id=sid)
    assert refused.value.error == "token_revoked"


def test_an_unknown_session_state_is_read_from_the_database_and_cached(ada: User) -> None:
    sid = open_session(ada)
    get_redis().delete(sessions.state_key(sid))
    assert realtime.listener(user_id=ada.id, session_id=sid).session_id == sid
    assert get_redis().get(sessions.state_key(sid)) == sessions.ACTIVE


def test_a_rolled_back_change_writes_nothing(ada: User) -> None:
    def change_then_fail() -> None:
        with db.atomic():
            ada.role = "admin"
            ada.save()
            roles.remember_after_commit(ada)
            User.create(email=ada.email, password_hash="x")  # the same address: it fails

    with pytest.raises(peewee.IntegrityError):
        change_then_fail()
    assert get_redis().get(roles.role_key(ada.id)) is None


def test_a_failed_cache_write_is_logged_not_raised(ada: User, app: Flask) -> None:
    app.extensions["redis"] = type(get_redis())(host="127.0.0.1", port=1)  # nothing listens
    try:
        roles.remember_after_commit(ada)  # no transaction: written (and failing) at once
    finally:
        del app.extensions["redis"]
