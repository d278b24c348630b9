"""Who may listen to which live channel, and single-use stream tickets."""

from __future__ import annotations

import json
import secrets

import redis
import structlog

from backend.channels import ADMIN_TOPICS, PUBLIC_TOPICS, REAUTHORIZE_USERS, user_channel
from backend.db import db
from backend.errors import Forbidden, Unauthorized
from backend.models import User
from backend.redis_store import get_redis
from backend.services.access import is_admin
from backend.services.tokens import digest

log = structlog.get_logger(__name__)

TICKET_TTL_SECONDS = 60
_TICKET_KEY = "sse:ticket:{}"


def channels_for(*, user: User, topics: list[str]) -> list[str]:
    """Return the channels `user` listens to: their own plus the requested `topics`.

    Raises `Forbidden` naming the first topic they may not read (another
    user's channel, `admin` for non-admins, or an unknown topic).
    """
    own = user_channel(user.id)
    channels = [own]
    for topic in topics:
        allowed = (
            topic == own or topic in PUBLIC_TOPICS or (topic in ADMIN_TOPICS and is_admin(user))
        )
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
