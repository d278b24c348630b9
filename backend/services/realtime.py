"""Who may listen to which live channel, and single-use stream tickets."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

import redis
import structlog

from backend.channels import ADMIN_TOPICS, PUBLIC_TOPICS, REAUTHORIZE_USERS, user_channel
from backend.db import db
from backend.errors import Forbidden, Unauthorized
from backend.models import User
from backend.redis_store import get_redis, round_trip
from backend.services import roles, sessions
from backend.services.access import is_admin_role
from backend.services.tokens import digest

log = structlog.get_logger(__name__)

TICKET_TTL_SECONDS = 60
_TICKET_KEY = "sse:ticket:{}"


@dataclass(frozen=True)
class Listener:
    """Who opens a stream: an active user, their role, and their active device session."""

    user_id: int
    role: str
    session_id: int


def listener(*, user_id: int, session_id: int) -> Listener:
    """Return who opens a stream, checked in one Redis round trip (the database as fallback).

    The session must be active (a revoked one is refused at once: revocation
    writes the cache) and the user active (deactivation revokes every session;
    a role is cached by `roles`, rewritten when it changes). Raises
    `Unauthorized` otherwise; a Redis error propagates (the stream needs Redis).
    """
    state, cached_role = round_trip(
        get_redis(), [("GET", sessions.state_key(session_id)), ("GET", roles.role_key(user_id))]
    )
    if not sessions.active_from_state(session_id, state):
        raise Unauthorized("This session has ended; sign in again.", error="token_revoked")
    role = roles.role_from_cache(user_id, cached_role)
    if role is None:
        raise Unauthorized("The account no longer exists or is deactivated.")
    return Listener(user_id=user_id, role=role, session_id=session_id)


def channels_for(*, listener: Listener, topics: list[str]) -> list[str]:
    """Return the channels `listener` reads: their own plus the requested `topics`.

    Raises `Forbidden` naming the first topic they may not read (another
    user's channel, `admin` for non-admins, or an unknown topic).
    """
    own = user_channel(listener.user_id)
    channels = [own]
    admin = is_admin_role(listener.role)
    for topic in topics:
        allowed = topic == own or topic in PUBLIC_TOPICS or (topic in ADMIN_TOPICS and admin)
        if not allowed:
            raise Forbidden(f"You may not subscribe to {topic!r}.")
        if topic not in channels:
            channels.append(topic)
    return channels


def issue_ticket(*, user: User, session_id: int) -> str:
    """Return a single-use ticket (valid 60 s) that opens one stream as this user/session."""
    ticket = secrets.token_urlsafe(32)
    value = json.dumps({"user_id": user.id, "sid": session_id})
    get_redis().set(_ticket_key(ticket), value, ex=TICKET_TTL_SECONDS)
    return ticket


def redeem_ticket(ticket: str) -> tuple[int, int]:
    """Spend a ticket; return `(user_id, session_id)`. Raises `Unauthorized` if unknown or used."""
    raw = get_redis().getdel(_ticket_key(ticket))
    if raw is None:
        raise Unauthorized(
            "This ticket is unknown, expired or already used.", error="invalid_ticket"
        )
    data = json.loads(raw)
    return int(data["user_id"]), int(data["sid"])


def _ticket_key(ticket: str) -> str:
    return _TICKET_KEY.format(digest(ticket))


def reauthorize_streams(user: User) -> None:
    """End `user`'s open streams once the current transaction commits (their rights changed).

    Every process's hub ends them at once; the client reconnects (resuming with
    `Last-Event-ID`, nothing lost) and is authorised under its new role, so a
    demoted admin keeps no `admin` channel.
    """

    def announce() -> None:
        try:
            get_redis().publish(REAUTHORIZE_USERS, str(user.id))
        except redis.RedisError as exc:  # streams re-check their session within a minute
            log.error("stream_reauthorization_failed", user_id=user.id, error=str(exc))

    db.after_commit(announce)
