"""The live-events hub: one Redis Pub/Sub connection per process, fanned out to SSE clients.

Each web process runs one `Hub`. It keeps a single Pub/Sub connection
subscribed to the live channel of every channel its clients listen to
(reference-counted: subscribed by the first client, unsubscribed after the
last) and copies each event into the bounded queue of every interested
client. A client whose queue overflows is dropped (it resumes from its last
event on reconnect) rather than slowing the others. Revoked sessions are
pushed to the hub (on `channels.REVOKED_SESSIONS`) and their streams end at
once; so do the streams of a user whose role changed (`REAUTHORIZE_USERS`), so
that the reconnect is authorised under the new role. If Redis drops the
connection, every stream is ended so clients reconnect and replay, and the hub
connects again (through the sentinels, when they are set: to the new master
after a failover) with a short backoff, at once when a stream asks for it. A
master the sentinels replaced while it still runs is left within a second or so.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections import defaultdict
from typing import Any

import redis
import structlog

from backend import wakeups
from backend.channels import REAUTHORIZE_USERS, REVOKED_SESSIONS, user_channel
from backend.events import LIVE_PREFIX, Event, decode_live, live_channel
from backend.hub_positions import HubPositions
from backend.metrics import SSE_CONNECTIONS as CONNECTIONS
from backend.metrics import SSE_DELIVERED as DELIVERED
from backend.metrics import SSE_DROPPED as DROPPED
from backend.redis_sentinel import BlockingSentinelPool
from backend.redis_store import RedisTarget, client_for

log = structlog.get_logger(__name__)

CONTROL_CHANNEL = "events:control"
SUBSCRIBE_TIMEOUT = 5.0
RECONNECT_BACKOFF = (0.1, 5.0)  # first and longest wait between attempts to reconnect


class HubUnavailable(RuntimeError):
    """Redis did not confirm a subscription in time."""


class Subscriber:
    """One open stream: the channels it reads and its bounded list of events to send.

    Kept small (a list and one event flag, ~0.3 KB where a `queue.Queue` takes
    ~3 KB): a box holds tens of thousands of mostly idle streams. The hub
    appends, the stream takes; both are single operations on a list, safe
    between threads as between greenlets. A waiting stream has no timer of its
    own: the process's `wakeups.clock` wakes it when its time is up.
    """

    __slots__ = ("_pending", "_wakeup", "channels", "ended", "maxsize", "session_id", "waits_until")

    def __init__(self, channels: list[str], *, session_id: int, maxsize: int) -> None:
        """Create a subscriber for `channels`, owned by device session `session_id`."""
        self.channels = channels
        self.session_id = session_id
        self.maxsize = maxsize
        self.ended: str | None = None  # why the hub ended this stream, if it did
        self._pending: list[Event] = []
        self._wakeup = threading.Event()
        self.waits_until = 0.0  # the wake-up asked of the clock last

    def offer(self, event: Event) -> bool:
        """Queue an event, or end the stream if the client cannot keep up (then False)."""
        if len(self._pending) >= self.maxsize:
            DROPPED.inc()
            self.end("overflow")
            return False
        self._pending.append(event)
        self._wakeup.set()
        return True

    def end(self, reason: str) -> None:
        """Ask the stream to finish (it wakes up if it is waiting)."""
        if self.ended is None:
            self.ended = reason
        self._wakeup.set()

    def next_event(self, until: float) -> Event | None:
        """Return the oldest queued event, waiting until `time.monotonic()` reaches `until`.

        None when none came by then (possibly a little later: the clock wakes
        streams in batches), and at once when the stream was ended (what is
        still queued is not sent: the client resumes from its last event).
        """
        if not self._pending and self.ended is None:
            self._wakeup.clear()
            # Checked after the clear: an offer, an end or a wake-up since then sets the flag.
            if not self._pending and self.ended is None and time.monotonic() < until:
                if self.waits_until != until:
                    self.waits_until = until
                    wakeups.clock.wake_at(until, self)
                self._wakeup.wait()
        if self.ended is not None or not self._pending:
            return None
        return self._pending.pop(0)

    def wake_up(self, when: float) -> None:
        """The clock's call: wake the stream if `when` is still the time it waits for."""
        if when == self.waits_until:
            self._wakeup.set()


class Hub:
    """Fans events out from one Redis Pub/Sub connection to this process's subscribers."""

    def __init__(self, target: RedisTarget) -> None:
        """Prepare a hub on the Redis `target` names (the listener starts on first use)."""
        # Two connections at most: the Pub/Sub listener and one for wake-ups.
        self._client = client_for(target, timeout=5.0, max_connections=2, name="sse-hub")
        self._lock = threading.Lock()
        self._by_channel: dict[str, set[Subscriber]] = defaultdict(set)
        self._by_session: dict[int, set[Subscriber]] = defaultdict(set)
        self._ready: dict[str, threading.Event] = {}
        self._pending: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._retry_now = threading.Event()  # a stream waits: reconnect without backoff
        self._backoff = RECONNECT_BACKOFF[0]
        self.closing = False
        self.positions = HubPositions()  # the newest event of each channel, once learned

    def add(self, subscriber: Subscriber) -> None:
        """Start delivering to `subscriber`; returns once Redis confirmed its channels.

        Raises `HubUnavailable` if Redis does not confirm within a few seconds, or
        at once when the hub is closing (the process is shutting down).
        """
        if self.closing:
            raise HubUnavailable("this process is shutting down")
        self._ensure_running()
        waits = []
        new_channels = False
        with self._lock:
            self._by_session[subscriber.session_id].add(subscriber)
            for channel in subscriber.channels:
                self._by_channel[channel].add(subscriber)
                if channel not in self._ready:
                    self._ready[channel] = threading.Event()
                    self._pending.put(("subscribe", live_channel(channel)))
                    new_channels = True
                waits.append(self._ready[channel])
            CONNECTIONS.inc()
        if new_channels:
            self._retry_now.set()
            self._wake()
        if not all(ready.wait(SUBSCRIBE_TIMEOUT) for ready in waits):
            self.remove(subscriber)
            raise HubUnavailable("Redis did not confirm the subscription")

    def remove(self, subscriber: Subscriber) -> None:
        """Stop delivering to `subscriber`; unsubscribe channels nobody reads any more."""
        with self._lock:
            self._discard(self._by_session, subscriber.session_id, subscriber)
            for channel in subscriber.channels:
                if self._discard(self._by_channel, channel, subscriber):
                    self._ready.pop(channel, None)
                    self.positions.dropped(channel)
                    self._pending.put(("unsubscribe", live_channel(channel)))
            CONNECTIONS.dec()

    def subscriber_count(self) -> int:
        """Return how many streams this hub serves."""
        with self._lock:
            return sum(len(subs) for subs in self._by_session.values())

    def close(self) -> None:
        """End every stream now (worker shutdown). Safe to call from a signal handler."""
        self.closing = True
        for subscribers in list(self._by_session.values()):
            for subscriber in list(subscribers):
                subscriber.end("shutdown")

    @staticmethod
    def _discard(index: dict[Any, set[Subscriber]], key: Any, subscriber: Subscriber) -> bool:
        members = index.get(key)
        if members is None:
            return False
        members.discard(subscriber)
        if members:
            return False
        del index[key]
        return True

    def _ensure_running(self) -> None:
        thread = self._thread
        if thread is not None and thread.is_alive():
            return  # nearly always: the lock is only needed to start it
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="sse-hub", daemon=True)
                self._thread.start()

    def _wake(self) -> None:
        # If this fails the listener still picks the change up within a second.
        with contextlib.suppress(redis.RedisError):
            self._client.publish(CONTROL_CHANNEL, b"")

    def _run(self) -> None:
        while not self.closing:
            try:
                self._listen()
            except redis.RedisError as exc:
                log.warning("sse_hub_disconnected", error=str(exc))
                self._reset_all("redis_disconnected")
                self._pause()

    def _pause(self) -> None:
        """Wait before connecting again: doubling up to a few seconds, less when a stream waits."""
        first, longest = RECONNECT_BACKOFF
        time.sleep(first)
        self._retry_now.wait(max(0.0, self._backoff - first))
        self._retry_now.clear()
        self._backoff = min(self._backoff * 2, longest)

    def _listen(self) -> None:
        pubsub = self._client.pubsub()
        try:
            pubsub.subscribe(CONTROL_CHANNEL, REVOKED_SESSIONS, REAUTHORIZE_USERS)
            self._backoff = RECONNECT_BACKOFF[0]  # connected
            while not self.closing:
                self._apply_pending(pubsub)
                message = pubsub.get_message(timeout=1.0)
                if message is not None:
                    self._handle(message)
                self._check_master(pubsub)
        finally:
            pubsub.close()

    def _check_master(self, pubsub: Any) -> None:
        """Leave a master the sentinels replaced while it lived (events now go to the new one)."""
        pool = self._client.connection_pool
        if not isinstance(pool, BlockingSentinelPool) or pubsub.connection is None:
            return
        master = pool.follow_master()
        if master is not None and master != (pubsub.connection.host, pubsub.connection.port):
            raise redis.ConnectionError(f"the master moved to {master[0]}:{master[1]}")

    def _apply_pending(self, pubsub: Any) -> None:
        while True:
            try:
                action, channel = self._pending.get_nowait()
            except queue.Empty:
                return
            getattr(pubsub, action)(channel)

    def _handle(self, message: dict[str, Any]) -> None:
        channel = message["channel"].decode()
        if message["type"] == "subscribe" and channel.startswith(LIVE_PREFIX):
            name = channel.removeprefix(LIVE_PREFIX)
            ready = self._ready.get(name)
            if ready is not None:
                self.positions.confirmed(name)
                ready.set()
        elif message["type"] == "message" and channel.startswith(LIVE_PREFIX):
            name = channel.removeprefix(LIVE_PREFIX)
            event = decode_live(name, message["data"])
            with self._lock:
                targets = list(self._by_channel.get(name, ()))
                self.positions.delivered(event)  # with the targets: see hub_positions
            queued = sum(subscriber.offer(event) for subscriber in targets)
            if queued:
                DELIVERED.inc(queued)  # once per event: a counter is a lock and a page write
        elif message["type"] == "message" and channel == REVOKED_SESSIONS:
            self._end_sessions(message["data"].decode())
        elif message["type"] == "message" and channel == REAUTHORIZE_USERS:
            self._end_users(message["data"].decode())

    def session_ids(self) -> set[int]:
        """Return the device sessions of this hub's open streams."""
        with self._lock:
            return set(self._by_session)

    def end_sessions(self, session_ids: set[int], reason: str) -> None:
        """End the streams of `session_ids`, for `reason`."""
        with self._lock:
            targets = [s for sid in session_ids for s in self._by_session.get(sid, ())]
        for subscriber in targets:
            subscriber.end(reason)

    def _end_sessions(self, payload: str) -> None:
        self.end_sessions({int(part) for part in payload.split(",") if part.isdigit()}, "revoked")

    def _end_users(self, payload: str) -> None:
        ids = {int(part) for part in payload.split(",") if part.isdigit()}
        with self._lock:
            targets = [s for uid in ids for s in self._by_channel.get(user_channel(uid), ())]
        for subscriber in targets:
            subscriber.end("reauthorize")

    def _reset_all(self, reason: str) -> None:
        with self._lock:
            targets = [s for subs in self._by_session.values() for s in subs]
            for ready in self._ready.values():
                ready.clear()
            self.positions.reset()
            # Channels must be subscribed again on the new connection.
            for channel in self._ready:
                self._pending.put(("subscribe", live_channel(channel)))
        for subscriber in targets:
            subscriber.end(reason)


_hubs: dict[RedisTarget, Hub] = {}
_hubs_lock = threading.Lock()
_shutting_down = False  # set by close_all: closed hubs are not replaced any more


def hub_for(target: RedisTarget | str) -> Hub:
    """Return this process's hub for the Redis `target` names (or at a URL)."""
    if isinstance(target, str):
        target = RedisTarget(url=target)
    with _hubs_lock:
        hub = _hubs.get(target)
        if hub is None or (hub.closing and not _shutting_down):
            hub = _hubs[target] = Hub(target)
        return hub


def close_all() -> None:
    """End every stream of every hub in this process, and refuse new ones (worker shutdown)."""
    global _shutting_down  # noqa: PLW0603 - once per process, from the SIGTERM handler
    _shutting_down = True
    for hub in list(_hubs.values()):
        hub.close()
