"""Each user's role as event streams see it: cached in Redis, the database as the fallback.

`auth:role:{id}` holds the role of an active user, or `-` when there is none
(no such user, or deactivated). Whoever changes a role or deactivates a user
writes the key after commit (`remember_after_commit`); a reader that missed it
loads the row and fills the key only if it is still absent (`SET NX`), so a
row read before a change never overwrites the change.
"""

from __future__ import annotations

import redis
import structlog

from backend.db import db
from backend.models import User
from backend.redis_store import get_redis

log = structlog.get_logger(__name__)

ROLE_KEY = "auth:role:{}"
ROLE_CACHE_SECONDS = 600
NO_ROLE = b"-"


def role_key(user_id: int) -> str:
    """Return the Redis key that caches `user_id`'s role."""
    return ROLE_KEY.format(user_id)


def role_from_cache(user_id: int, cached: bytes | None) -> str | None:
    """Return the role of active user `user_id` (None if missing or inactive).

    `cached` is what `role_key(user_id)` held (None: absent); when absent the
    database answers and the cache is filled.
    """
    if cached is not None:
        return None if cached == NO_ROLE else cached.decode()
    user = User.get_or_none(User.id == user_id)
    role = user.role if user is not None and user.is_active else None
    get_redis().set(role_key(user_id), _encoded(role), nx=True, ex=ROLE_CACHE_SECONDS)
    return role


def remember_after_commit(user: User) -> None:
    """Write `user`'s role (or its absence, if inactive) to the cache once the write commits."""
    role = user.role if user.is_active else None

    def write() -> None:
        try:
            get_redis().set(role_key(user.id), _encoded(role), ex=ROLE_CACHE_SECONDS)
        except redis.RedisError as exc:  # the old value expires within ROLE_CACHE_SECONDS
            log.error("role_not_cached", user_id=user.id, error=str(exc))

    db.after_commit(write)


def _encoded(role: str | None) -> bytes:
    return NO_ROLE if role is None else role.encode()
