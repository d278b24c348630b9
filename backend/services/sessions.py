"""Device sessions: creation, refresh-token rotation with reuse detection, revocation.

Whether a session is still valid is cached in Redis so every authenticated
request can check it for the price of one round trip; revoking a session
overwrites the cache after commit, so its access tokens stop working at once.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Collection, Iterable
from datetime import timedelta

import redis
import structlog
from flask import current_app
from peewee import Expression

from backend.channels import REVOKED_SESSIONS
from backend.db import db
from backend.models import AuthSession, User, utcnow
from backend.redis_store import get_redis, round_trip
from backend.services.audit import ClientInfo

log = structlog.get_logger(__name__)

STATE_KEY = "auth:session:{}"
SEEN_KEY = "auth:seen:{}"
ACTIVE_CACHE_SECONDS = 300
SEEN_THROTTLE_SECONDS = 60
ACTIVE, REVOKED = b"1", b"0"
BATCH = 1000  # sessions per MGET or query of `ended_among`


def new_jti() -> str:
    """Return a fresh refresh-token id."""
    return uuid.uuid4().hex


def create(*, user: User, device_name: str, client: ClientInfo) -> AuthSession:
    """Open a session for a device that just signed in."""
    return AuthSession.create(
        user=user,
        device_name=device_name[:100],
        user_agent=client.user_agent[:300],
        ip=client.ip[:64],
        current_jti=new_jti(),
    )


def rotate(session: AuthSession, *, presented_jti: str, client: ClientInfo) -> bool:
    """Replace the current refresh token id; False if another request rotated it first."""
    now = utcnow()
    updated = (
        AuthSession.update(
            current_jti=new_jti(),
            previous_jti=presented_jti,
            rotated_at=now,
            rotations=AuthSession.rotations + 1,
            last_seen_at=now,
            ip=client.ip[:64],
            updated_at=now,
        )
        .where(
            (AuthSession.id == session.id)
            & (AuthSession.current_jti == presented_jti)
            & AuthSession.revoked_at.is_null()
        )
        .execute()
    )
    return updated == 1


def in_grace_window(session: AuthSession, presented_jti: str) -> bool:
    """Return whether `presented_jti` was replaced only seconds ago (a retried refresh)."""
    grace = timedelta(seconds=current_app.config["REFRESH_REUSE_GRACE_SECONDS"])
    return bool(
        session.previous_jti == presented_jti
        and session.rotated_at is not None
        and utcnow() - session.rotated_at <= grace
    )


def revoke_where(condition: Expression, *, reason: str) -> list[int]:
    """Revoke every active session matching `condition`; return their ids.

    The cache is updated after the surrounding transaction commits.
    """
    ids = [s.id for s in AuthSession.select(AuthSession.id).where(condition & _active())]
    if ids:
        now = utcnow()
        AuthSession.update(revoked_at=now, revoked_reason=reason, updated_at=now).where(
            AuthSession.id.in_(ids) & _active()
        ).execute()
        db.after_commit(lambda: _cache_revoked(ids))
    return ids


def revoke_all_for(user: User, *, reason: str, keep: int | None = None) -> list[int]:
    """Revoke all of `user`'s sessions, except the one with id `keep`."""
    condition = AuthSession.user == user.id
    if keep is not None:
        condition &= AuthSession.id != keep
    return revoke_where(condition, reason=reason)


def active_for(user: User) -> list[AuthSession]:
    """Return `user`'s active sessions, most recently used first."""
    query = AuthSession.select().where((AuthSession.user == user.id) & _active())
    return list(query.order_by(AuthSession.last_seen_at.desc(), AuthSession.id.desc()))


def is_active(session_id: int, *, note_seen: bool = True) -> bool:
    """Return whether the session may still be used (cached; falls back to the database).

    With `note_seen`, its `last_seen_at` is also brought up to date (at most once a
    minute); a caller that already did so this minute may pass False and save
    that part of the round trip.
    """
    try:
        return _cached_is_active(session_id, note_seen=note_seen)
    except redis.RedisError as exc:
        log.warning("session_cache_unavailable", error=str(exc))
        return _load_is_active(session_id)


def ended_among(session_ids: Collection[int]) -> set[int]:
    """Return which of `session_ids` may no longer be used (the open streams' periodic check).

    One MGET per `BATCH` sessions (`last_seen_at` is left to the sessions'
    requests); the database answers for the sessions the cache lacks, in one
    query per batch, and the cache is filled. When Redis is unreachable the
    database answers for all of them. Raises the database's errors.
    """
    ids = sorted(set(session_ids))
    try:
        states = _cached_states(ids)
    except redis.RedisError as exc:
        log.warning("session_cache_unavailable", error=str(exc))
        return set(ids) - _load_active(ids)
    ended = {sid for sid, state in states.items() if state is not None and state != ACTIVE}
    unknown = [sid for sid, state in states.items() if state is None]
    if not unknown:
        return ended
    active = _load_active(unknown)
    with contextlib.suppress(redis.RedisError), get_redis().pipeline(transaction=False) as pipe:
        for sid in unknown:  # NX: never overwrite a revocation written since we read
            if sid in active:
                pipe.set(state_key(sid), ACTIVE, nx=True, ex=ACTIVE_CACHE_SECONDS)
            else:
                pipe.set(state_key(sid), REVOKED, nx=True, ex=_revoked_cache_seconds())
        pipe.execute()
    return ended | (set(unknown) - active)


def _cached_states(ids: list[int]) -> dict[int, bytes | str | None]:
    client = get_redis()
    states: dict[int, bytes | str | None] = {}
    for start in range(0, len(ids), BATCH):
        batch = ids[start : start + BATCH]
        states.update(zip(batch, client.mget([state_key(sid) for sid in batch]), strict=True))
    return states


def _load_active(ids: list[int]) -> set[int]:
    active: set[int] = set()
    for start in range(0, len(ids), BATCH):
        query = AuthSession.select(AuthSession.id).where(
            AuthSession.id.in_(ids[start : start + BATCH]) & _active()
        )
        active.update(session.id for session in query)
    return active


def _active() -> Expression:
    return AuthSession.revoked_at.is_null()


def _cached_is_active(session_id: int, *, note_seen: bool) -> bool:
    client = get_redis()
    if note_seen:
        with client.pipeline(transaction=False) as pipe:
            pipe.get(STATE_KEY.format(session_id))
            pipe.set(SEEN_KEY.format(session_id), 1, nx=True, ex=SEEN_THROTTLE_SECONDS)
            state, first_in_a_while = pipe.execute()
    else:  # one GET, which may share its round trip with others' (open streams re-checking)
        (state,), first_in_a_while = round_trip(client, [("GET", state_key(session_id))]), False
    if state is None:
        return active_from_state(session_id, state)
    if state == ACTIVE and first_in_a_while:
        now = utcnow()
        AuthSession.update(last_seen_at=now).where(AuthSession.id == session_id).execute()
    return bool(state == ACTIVE)


def state_key(session_id: int) -> str:
    """Return the Redis key that caches whether `session_id` is active."""
    return STATE_KEY.format(session_id)


def active_from_state(session_id: int, state: bytes | None) -> bool:
    """Return whether the session is active, given what `state_key(session_id)` held.

    For callers that read the key in a round trip of their own (event streams).
    When it was absent the database answers and the cache is filled.
    """
    if state is not None:
        return state == ACTIVE
    active = _load_is_active(session_id)
    # NX: never overwrite a revocation written since we read the database.
    get_redis().set(
        state_key(session_id),
        ACTIVE if active else REVOKED,
        nx=True,
        ex=ACTIVE_CACHE_SECONDS if active else _revoked_cache_seconds(),
    )
    return active


def _load_is_active(session_id: int) -> bool:
    session = AuthSession.get_or_none(AuthSession.id == session_id)
    return session is not None and session.revoked_at is None


def _revoked_cache_seconds() -> int:
    return int(current_app.config["REFRESH_TOKEN_TTL_SECONDS"])


def _cache_revoked(ids: Iterable[int]) -> None:
    try:
        with get_redis().pipeline(transaction=False) as pipe:
            for session_id in ids:
                pipe.set(STATE_KEY.format(session_id), REVOKED, ex=_revoked_cache_seconds())
            # Live event streams of these sessions end at once (see backend.sse).
            pipe.publish(REVOKED_SESSIONS, ",".join(str(i) for i in ids))
            pipe.execute()
    except redis.RedisError as exc:  # the database stays authoritative
        log.error("session_revocation_not_cached", error=str(exc), session_ids=list(ids))


def purge_ended(*, older_than: timedelta) -> int:
    """Delete sessions revoked longer ago than `older_than` (their tokens expired long since)."""
    cutoff = utcnow() - older_than
    ended = AuthSession.revoked_at.is_null(False) & (AuthSession.revoked_at < cutoff)
    return int(AuthSession.delete().where(ended).execute())
