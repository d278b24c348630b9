"""Read-through caches that never serve stale data and never turn a Redis outage into an error.

Entries are grouped by namespace. Each namespace has a version in Redis: a random
token that `invalidate` replaces (after a write commits), which makes every entry
of the old version unreachable at once, in every process.

Two levels share that version:

- `cached`: JSON values in Redis under a versioned key (one round trip reads the
  version and the entry together); entries expire on their own.
- `local`: values kept in this process (say, a rendered response), each tagged with
  the version read *before* it was computed, and served only while a version read
  *after* the request arrived still matches. So a write whose invalidation finished
  before a read began is always seen, whichever process made it; a read racing a
  write may refill an entry, but tags it with the old version, so nobody is served
  it after the invalidation. Concurrent requests of one process share one version
  read (see `VersionReader`), so under load the check costs a fraction of a round trip.

Versions are random tokens, not counters, and a missing version (a restarted or
flushed Redis, an evicted key) is replaced by a fresh token rather than read as
"0": an entry from before can never match again.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import gevent  # type: ignore[import-untyped]  # no stubs
import redis
import structlog
from flask import Flask, current_app, has_request_context, request
from gevent import monkey

from backend.redis_store import get_redis

log = structlog.get_logger(__name__)

DEFAULT_TTL_SECONDS = 300
LOCAL_MAX_ENTRIES = 2048  # per namespace and process; a full cache starts again empty
VERSION_WAIT_SECONDS = 10.0  # longer than the Redis client's own timeout
_OFFLINE_FLAG = "backend.cache_offline"  # in the request's environ

T = TypeVar("T")


def _version_key(namespace: str) -> str:
    return f"cache:{namespace}:version"


def _new_token() -> str:
    return secrets.token_hex(8)


# One round trip: read the namespace's version (creating it when missing), then
# the entry of that version.
_LOOKUP = """
local version = redis.call('GET', KEYS[1])
if not version then
  version = ARGV[3]
  redis.call('SET', KEYS[1], version)
end
local key = ARGV[1] .. version .. ':' .. ARGV[2]
return {key, redis.call('GET', key)}
"""


def _offline() -> bool:
    """Whether this request already found Redis unreachable (do not wait for it twice)."""
    return has_request_context() and _OFFLINE_FLAG in request.environ


def _mark_offline() -> None:
    if has_request_context():
        request.environ[_OFFLINE_FLAG] = True


def cached(
    namespace: str, key: str, compute: Callable[[], Any], *, ttl: int = DEFAULT_TTL_SECONDS
) -> Any:
    """Return the cached JSON value for `key`, computing and storing it on a miss.

    Values go through JSON (non-JSON types via `str`). With Redis unavailable,
    `compute()` is returned directly.
    """
    if _offline():
        return compute()
    client = get_redis()
    try:
        lookup = client.register_script(_LOOKUP)
        full_key, hit = lookup(
            keys=[_version_key(namespace)], args=[f"cache:{namespace}:", key, _new_token()]
        )
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
    """Make every cached entry of `namespace` stale, here and in every process.

    Call it after the write commits (`db.after_commit`).
    """
    try:
        get_redis().set(_version_key(namespace), _new_token())
    except redis.RedisError as exc:
        # Redis entries expire within their TTL, and local ones are only served
        # after a successful version read; nothing else to do without Redis.
        log.error("cache_invalidation_failed", namespace=namespace, error=str(exc))


def read_version(client: redis.Redis, namespace: str) -> str:
    """Return `namespace`'s current version token, creating one if it has none."""
    key = _version_key(namespace)
    value = client.get(key)
    if value is None:
        client.set(key, _new_token(), nx=True)
        value = client.get(key)
        if value is None:  # pragma: no cover - deleted again in between
            raise redis.RedisError(f"{key} vanished")
    return value.decode() if isinstance(value, bytes) else str(value)


class VersionConnection:
    """Reads one namespace's version over a Redis connection of its own.

    A `VersionReader` never has two round trips in flight, so one connection
    suffices; it skips the client's pool, retry and parsing layers (a sixth of
    the CPU of `client.get`). A missing version is created through `client`.

    Args:
        client: The app's Redis client (its connection settings are reused).
        namespace: Whose version to read.
    """

    def __init__(self, client: redis.Redis, namespace: str) -> None:
        self._client = client
        self._namespace = namespace
        # A connection of the pool's kind and settings, never handed out by it.
        self._connection = client.connection_pool.make_connection()
        self._command = self._connection.pack_command("GET", _version_key(namespace))

    def __call__(self) -> str:
        """Return the version token (raises `RedisError`)."""
        try:
            self._connection.send_packed_command(self._command)
            value = self._connection.read_response()
        except BaseException as exc:
            # Whatever happened (an error, a killed greenlet), an answer may still
            # be on its way: start again on a new connection next time.
            self._connection.disconnect()
            if isinstance(exc, OSError):
                raise redis.ConnectionError(str(exc)) from exc
            raise
        if value is None:
            return read_version(self._client, self._namespace)
        return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class Version:
    """A version token and the number of the round trip that read it (later reads: higher)."""

    number: int
    token: str


class _Read:
    """One round trip reading the version; callers that joined it wait on `done`."""

    __slots__ = ("done", "error", "number", "token")

    def __init__(self, number: int) -> None:
        self.number = number
        self.done = threading.Event()
        self.token: str | None = None
        self.error: Exception | None = None


def _let_ready_greenlets_run() -> None:
    """Under gevent, run the other greenlets that are ready, then come back; else nothing.

    (For threads `time.sleep(0)` would only give the CPU away.)
    """
    if monkey.is_module_patched("time"):
        gevent.sleep(0)


class VersionReader:
    """Reads a version, sharing each Redis round trip among the callers waiting for it.

    A caller accepts only a round trip *sent after it called*, so the token it gets
    is never older than its call. The first caller leads a round trip; before
    sending it, it lets the other requests that are ready run (under gevent), and
    those that ask meanwhile join it; those that ask once it is sent wait for the
    next one, which then serves all of them. Under load a process makes one round
    trip per batch of requests instead of one per request.

    Args:
        read: Performs one round trip and returns the token (may raise `RedisError`).
    """

    def __init__(self, read: Callable[[], str]) -> None:
        self._read = read
        self._lock = threading.Lock()
        self._numbered = 0  # round trips created
        self._sent = 0  # the newest round trip sent (or being sent)
        self._in_flight: _Read | None = None

    def current(self) -> Version:
        """Return a version read after this call began.

        Raises:
            redis.RedisError: Redis could not be read.
        """
        needed = 0
        while True:
            with self._lock:
                needed = needed or self._sent + 1
                round_trip = self._in_flight
                lead = round_trip is None
                if round_trip is None:
                    self._numbered += 1
                    round_trip = self._in_flight = _Read(self._numbered)
            if lead:
                self._perform(round_trip)
            elif not round_trip.done.wait(VERSION_WAIT_SECONDS):
                raise redis.TimeoutError("gave up waiting for the cache version")
            if round_trip.number >= needed:
                return self._result(round_trip)

    def _perform(self, round_trip: _Read) -> None:
        try:
            _let_ready_greenlets_run()  # those that reach `current` meanwhile join in
            with self._lock:
                self._sent = round_trip.number
            round_trip.token = self._read()
        except Exception as exc:  # noqa: BLE001 - handed to every caller of this round trip
            round_trip.error = exc
        finally:
            with self._lock:
                self._in_flight = None
            round_trip.done.set()

    @staticmethod
    def _result(round_trip: _Read) -> Version:
        if round_trip.token is None:
            error = round_trip.error
            raise redis.RedisError(f"cache version unavailable: {error}") from error
        return Version(round_trip.number, round_trip.token)


class LocalCache(Generic[T]):
    """One namespace's values kept in this process, each valid for one version.

    Get with `current()` first, then `get`/`put` with that version: a value is only
    returned for the version it was stored with, and storing is refused once a
    newer version has been seen. Bounded: a full cache starts again empty.

    Args:
        reader: Reads the namespace's version (shared round trips).
        max_entries: How many values to hold at most.
    """

    def __init__(self, reader: VersionReader, max_entries: int = LOCAL_MAX_ENTRIES) -> None:
        self._reader = reader
        self._max_entries = max_entries
        # (version, entries), replaced as a whole so that a value computed under
        # an old version can never land among the entries of a new one.
        self._state: tuple[Version, dict[str, T]] = (Version(0, ""), {})

    def current(self) -> Version:
        """Return the namespace's version, read after this call began (raises `RedisError`)."""
        return self._reader.current()

    def get(self, key: str, version: Version) -> T | None:
        """Return the value stored for `key` under `version`, if any."""
        held, entries = self._state
        if held.token == version.token:
            return entries.get(key)
        if version.number > held.number:  # a newer version: drop the old entries
            self._state = (version, {})
        return None

    def put(self, key: str, value: T, version: Version) -> None:
        """Store `value` (computed after `version` was read) unless the version moved on."""
        held, entries = self._state
        if held.token != version.token:
            return
        if len(entries) >= self._max_entries:
            entries.clear()
        entries[key] = value

    def __len__(self) -> int:
        return len(self._state[1])


_local_lock = threading.Lock()


def local(namespace: str) -> LocalCache[Any]:
    """Return the current app's process-local cache for `namespace`."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    caches: dict[str, LocalCache[Any]] | None = app.extensions.get("local_cache")
    store = caches.get(namespace) if caches is not None else None
    if store is not None:
        return store
    with _local_lock:
        caches = app.extensions.setdefault("local_cache", {})
        if namespace not in caches:
            reader = VersionReader(VersionConnection(get_redis(), namespace))
            caches[namespace] = LocalCache(reader)
        return caches[namespace]


def local_version(store: LocalCache[Any]) -> Version | None:
    """Return `store`'s current version, or None (logged) when Redis cannot be read.

    Without a version nothing local may be served; the request then also skips
    `cached`'s Redis round trip instead of waiting for Redis a second time.
    """
    try:
        return store.current()
    except redis.RedisError as exc:
        log.warning("cache_unavailable", error=str(exc))
        _mark_offline()
        return None
