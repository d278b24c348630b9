"""Namespace versions in Redis: the signal that cached copies of some data are stale.

A namespace (say, `"catalog"`) has a version: a random token in Redis that
`invalidate` replaces. Services call `invalidate` after a write commits
(`db.after_commit`); whoever keeps copies of the namespace's data (the
optimisation layer's caches) reads the version and serves a copy only while it
still matches the one read before the copy was computed. A new token makes
every older copy unreachable at once, in every process.

Versions are random tokens, not counters, and a missing version (a restarted or
flushed Redis, an evicted key) is replaced by a fresh token rather than read as
"0": a copy from before can never match again.
"""

from __future__ import annotations

import secrets

import redis
import structlog

from backend.redis_store import get_redis

log = structlog.get_logger(__name__)


def version_key(namespace: str) -> str:
    """Return the Redis key holding `namespace`'s version token."""
    return f"cache:{namespace}:version"


def _new_token() -> str:
    return secrets.token_hex(8)


def invalidate(namespace: str) -> None:
    """Make every cached copy of `namespace` stale, here and in every process.

    Call it after the write commits (`db.after_commit`). A Redis error is
    logged, not raised: caches only serve after a successful version read.
    """
    try:
        get_redis().set(version_key(namespace), _new_token())
    except redis.RedisError as exc:
        log.error("cache_invalidation_failed", namespace=namespace, error=str(exc))


def read_version(client: redis.Redis, namespace: str) -> str:
    """Return `namespace`'s current version token, creating one if it has none.

    Raises:
        redis.RedisError: Redis could not be read or written.
    """
    key = version_key(namespace)
    value = client.get(key)
    if value is None:
        client.set(key, _new_token(), nx=True)
        value = client.get(key)
        if value is None:  # pragma: no cover - deleted again in between
            raise redis.RedisError(f"{key} vanished")
    return value.decode() if isinstance(value, bytes) else str(value)
