"""One SSE response: replay what the client missed, then go live, with no gap or duplicate.

The client's position is a cursor holding the last event id of every channel
it reads; it is sent as the SSE `id:` of each event and comes back as
`Last-Event-ID` when the client reconnects. Whether the stream's session is
still signed in is asked of the check the caller passes (`session_active`):
the stream knows nothing of accounts.
"""

from __future__ import annotations

import queue
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import redis
from flask import Flask

from backend.db import db
from backend.events import Event, histories_after, latest_ids, parse_id
from backend.metrics import SSE_DELIVERED as DELIVERED
from backend.redis_store import get_redis
from backend.sse import Hub, Subscriber

Cursor = dict[str, str]


@dataclass(frozen=True)
class StreamSettings:
    """Timing and size limits of event streams."""

    retry_ms: int = 3000
    heartbeat_seconds: float = 15.0
    max_lifetime_seconds: float = 3600.0
    revalidate_seconds: float = 60.0
    queue_size: int = 256
    replay_limit: int = 1000

    @classmethod
    def from_config(cls, config: dict[str, object]) -> StreamSettings:
        """Read the `SSE_*` settings from the app config."""
        return cls(
            retry_ms=int(str(config["SSE_RETRY_MS"])),
            heartbeat_seconds=float(str(config["SSE_HEARTBEAT_SECONDS"])),
            max_lifetime_seconds=float(str(config["SSE_MAX_LIFETIME_SECONDS"])),
            queue_size=int(str(config["SSE_QUEUE_SIZE"])),
        )


def encode_cursor(cursor: Cursor) -> str:
    """Serialise a cursor into an SSE id (opaque to clients)."""
    return ",".join(f"{channel}={event_id}" for channel, event_id in sorted(cursor.items()))


def decode_cursor(raw: str | None) -> Cursor | None:
    """Parse a `Last-Event-ID`; None when absent, `{}` when malformed (the client must reset)."""
    if not raw:
        return None
    cursor: Cursor = {}
    for part in raw.split(","):
        channel, sep, event_id = part.rpartition("=")
        try:
            parse_id(event_id)
        except ValueError:
            return {}
        if not sep or not channel:
            return {}
        cursor[channel] = event_id
    return cursor


def frame(event_type: str, data: str, cursor: Cursor) -> str:
    """Format one SSE event."""
    return f"id: {encode_cursor(cursor)}\nevent: {event_type}\ndata: {data}\n\n"


class EventStream:
    """The body of one `GET /events` response."""

    def __init__(
        self,
        *,
        app: Flask,
        hub: Hub,
        channels: list[str],
        session_id: int,
        resume_from: Cursor | None,
        settings: StreamSettings,
        session_active: Callable[[int], bool],
    ) -> None:
        """Prepare a stream; nothing happens until it is iterated.

        `session_active(session_id)` says whether the session may still read;
        it is asked every `revalidate_seconds`, in an app context.
        """
        self.app = app
        self.session_active = session_active
        self.hub = hub
        self.settings = settings
        self.resume_from = resume_from
        self.subscriber = Subscriber(channels, session_id=session_id, maxsize=settings.queue_size)
        lifetime = settings.max_lifetime_seconds
        self.deadline = time.monotonic() + lifetime * random.uniform(0.9, 1.0)  # noqa: S311

    def __iter__(self) -> Iterator[str]:
        """Yield the SSE text: `retry:`, missed events, then live events and heartbeats.

        The first item is produced only after the subscription is confirmed and
        the missed events are read, so nothing published meanwhile is lost.
        """
        with self.app.app_context():
            self.hub.add(self.subscriber)
        try:
            with self.app.app_context():
                cursor, missed, reset = self._catch_up()
            yield f"retry: {self.settings.retry_ms}\n\n"
            if reset:
                channels = ",".join(f'"{c}"' for c in reset)
                yield frame("stream.reset", f'{{"channels":[{channels}]}}', cursor)
            for event in missed:
                cursor[event.channel] = event.id
                DELIVERED.inc()
                yield frame(event.type, event.data, cursor)
            yield from self._live(cursor)
        finally:
            self.hub.remove(self.subscriber)

    def _catch_up(self) -> tuple[Cursor, list[Event], list[str]]:
        """The cursor to go live from, the missed events to replay, and the channels reset.

        Runs once the subscription is confirmed: every event newer than what it
        reads also reaches the queue, and `_live` skips those already replayed
        or older than the starting point, so there is no gap and no duplicate.
        A channel the client has no position for starts from its newest event;
        one whose missed events are gone, or every channel after a garbled
        `Last-Event-ID`, is reset (it starts from its newest event too). One
        Redis round trip, two when some history is gone.
        """
        client = get_redis()
        channels = self.subscriber.channels
        malformed = self.resume_from == {}
        resumed = {} if malformed else self.resume_from or {}
        known = {channel: resumed[channel] for channel in channels if channel in resumed}
        histories = histories_after(client, known, limit=self.settings.replay_limit)
        gone = [channel for channel, (_, complete) in histories.items() if not complete]
        cursor = latest_ids(client, [c for c in channels if c not in known or c in gone])
        missed: list[Event] = []
        for channel, (events, complete) in histories.items():
            if complete:
                cursor[channel] = known[channel]
                missed.extend(events)
        missed.sort(key=lambda event: event.position)
        return cursor, missed, list(channels) if malformed else gone

    def _live(self, cursor: Cursor) -> Iterator[str]:
        last_write = time.monotonic()
        last_check = last_write
        while self.subscriber.ended is None and time.monotonic() < self.deadline:
            try:
                event = self.subscriber.queue.get(timeout=self.settings.heartbeat_seconds)
            except queue.Empty:
                event = None
            now = time.monotonic()
            if now - last_check >= self.settings.revalidate_seconds:
                last_check = now
                if not self._still_signed_in():
                    return
            if event is not None and event.position > _position(cursor, event.channel):
                cursor[event.channel] = event.id
                DELIVERED.inc()
                last_write = now
                yield frame(event.type, event.data, cursor)
            elif now - last_write >= self.settings.heartbeat_seconds:
                last_write = now
                yield ": keep-alive\n\n"
        if self.subscriber.ended == "shutdown":
            yield self._resume_hint()

    def _resume_hint(self) -> str:
        """A `retry:` for a stream the process ends as it shuts down: reconnect soon, elsewhere.

        Spread over a tenth to all of `retry_ms`, so that the streams of an instance
        do not all reconnect to the others at once.
        """
        retry_ms = self.settings.retry_ms
        return f"retry: {random.randint(max(1, retry_ms // 10), max(1, retry_ms))}\n\n"  # noqa: S311

    def _still_signed_in(self) -> bool:
        # A fallback: revocations are also pushed to the hub, which ends streams at once.
        with self.app.app_context():
            try:
                return self.session_active(self.subscriber.session_id)
            except redis.RedisError:
                return True
            finally:
                if not db.is_closed():
                    db.close()


def _position(cursor: Cursor, channel: str) -> tuple[int, int]:
    return parse_id(cursor.get(channel, "0-0"))
