"""A small read-through JSON cache on Redis that never turns an outage into an error.

Entries are grouped by namespace; bumping a namespace's version (after a
write commits) makes every entry of the old version unreachable at once, and
they expire on their own.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import redis
import structlog

from backend.redis_store import get_redis

log = structlog.get_logger(__name__)

DEFAULT_TTL_SECONDS = 300


def _version_key(namespace: str) -> str:
    return f"cache:{namespace}:version"


# One round trip: read the namespace's version, then the entry of that version.
_LOOKUP = """
local version = redis.call('GET', KEYS[1]) or '0'
local key = ARGV[1] .. version .. ':' .. ARGV[2]
return {key, redis.call('GET', key)}
"""


def cached(
    namespace: str, key: str, compute: Callable[[], Any], *, ttl: int = DEFAULT_TTL_SECONDS
) -> Any:
    """Return the cached JSON value for `key`, computing and storing it on a miss.

    Values go through JSON (non-JSON types via `str`). With Redis unavailable,
    `compute()` is returned directly.
    """
    client = get_redis()
    try:
        lookup = client.register_script(_LOOKUP)
        full_key, hit = lookup(keys=[_version_key(namespace)], args=[f"cache:{namespace}:", key])
    except redis.RedisError as exc:
        log.warning("cache_unavailable", error=str(exc))
        return compute()
    if hit is not None:
        return json.loads(hit)
    # Hits and misses return the same thing: what survives a JSON round trip.
    encoded = json.dumps(compute(), separators=(",", ":"), default=str)
    try:
        client.set(full_key, encoded, ex=ttl)
    except redis.RedisError as exc:
        log.warning("cache_unavailable", error=str(exc))
    return json.loads(encoded)


def invalidate(namespace: str) -> None:
    """Make every cached entry of `namespace` stale (call after the write commits)."""
    try:
        get_redis().incr(_version_key(namespace))
    except redis.RedisError as exc:
        # Entries expire within their TTL; nothing else to do without Redis.
        log.error("cache_invalidation_failed", namespace=namespace, error=str(exc))
