"""Values kept in one process, each served only while the shared Redis version still matches.

The building block of the layer's caches (see `backend.cache` for the versions).
A value is tagged with the namespace's version read *before* it was computed,
and served only while a version read *after* the request arrived still matches.
So a write whose invalidation finished before a read began is always seen,
whichever process made it; a read racing a write may refill an entry, but tags
it with the old version, so nobody is served it after the invalidation.
Concurrent requests of one process share one version read (`VersionReader`), so
under load the check costs a fraction of a Redis round trip per request.

If an invalidation is lost (Redis unreachable while a write commits), the old
entries are still dropped after `MAX_AGE_SECONDS`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

import gevent  # type: ignore[import-untyped]  # no stubs
import redis
from gevent import monkey

MAX_ENTRIES = 2048  # per cache; a full cache starts again empty
MAX_AGE_SECONDS = 300.0  # a lost invalidation stays unseen at most this long
VERSION_WAIT_SECONDS = 10.0  # longer than the Redis client's own timeout

T = TypeVar("T")


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
    newer version has been seen. Bounded in size and age: a full or old cache
    starts again empty.

    Args:
        reader: Reads the namespace's version (shared round trips).
        max_entries: How many values to hold at most.
        max_age: Seconds after which the values of one version are dropped anyway.
    """

    def __init__(
        self,
        reader: VersionReader,
        max_entries: int = MAX_ENTRIES,
        max_age: float = MAX_AGE_SECONDS,
    ) -> None:
        self._reader = reader
        self._max_entries = max_entries
        self._max_age = max_age
        # (version, entries, expiry), replaced as a whole so that a value computed
        # under an old version can never land among the entries of a new one.
        self._state: tuple[Version, dict[str, T], float] = (Version(0, ""), {}, 0.0)

    def current(self) -> Version:
        """Return the namespace's version, read after this call began (raises `RedisError`)."""
        return self._reader.current()

    def get(self, key: str, version: Version) -> T | None:
        """Return the value stored for `key` under `version`, if any."""
        held, entries, expires = self._state
        if held.token == version.token and time.monotonic() < expires:
            return entries.get(key)
        if version.number > held.number or held.token == version.token:
            # A newer version (or this one grown old): start again empty.
            self._state = (version, {}, time.monotonic() + self._max_age)
        return None

    def put(self, key: str, value: T, version: Version) -> None:
        """Store `value` (computed after `version` was read) unless the version moved on."""
        held, entries, _expires = self._state
        if held.token != version.token:
            return
        if len(entries) >= self._max_entries:
            entries.clear()
        entries[key] = value

    def held_keys(self) -> list[str]:
        """Return the keys held now (for tests and debugging)."""
        return list(self._state[1])

    def __len__(self) -> int:
        return len(self._state[1])
