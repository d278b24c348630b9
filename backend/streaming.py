"""One SSE response: replay what the client missed, then go live, with no gap or duplicate.

The client's position is a cursor holding the last event id of every channel
it reads; it is sent as the SSE `id:` of each event and comes back as
`Last-Event-ID` when the client reconnects. Whether the stream's session is
still signed in is asked of the check the caller passes (`ended_among`), for
all of a process's streams at once (`stream_sessions`): the stream knows
nothing of accounts.
"""

from __future__ import annotations

import contextlib
import functools
import random
import time
from collections.abc import Generator, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass

import redis
from flask import Flask, current_app, has_app_context

from backend.events import Event, histories_after, latest_ids, parse_id
from backend.hub_positions import Since
from backend.metrics import SSE_DELIVERED as DELIVERED
from backend.redis_store import get_redis
from backend.sse import Hub, Subscriber
from backend.stream_sessions import EndedAmong, sweep_for
from backend.wakeups import round_up

Cursor = dict[str, str]
HEARTBEAT_QUANTUM = 0.05  # s: heartbeats due within it of each other are sent together
HUB_POSITIONS = "backend.hub_positions"  # app.extensions: streams start from what the hub knows


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
            revalidate_seconds=float(str(config["SSE_SESSION_CHECK_SECONDS"])),
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

    # Slots: a box holds tens of thousands of these, mostly idle.
    __slots__ = ("app", "closed", "cursor", "deadline", "ended_among", "hub", "resume_from",
                 "settings", "subscriber")  # fmt: skip

    def __init__(
        self,
        *,
        app: Flask,
        hub: Hub,
        channels: list[str],
        session_id: int,
        resume_from: Cursor | None,
        settings: StreamSettings,
        ended_among: EndedAmong,
    ) -> None:
        """Prepare a stream; nothing happens until it is iterated.

        `ended_among(session_ids)` says which of the sessions of the process's
        open streams may no longer read; it is asked every `revalidate_seconds`
        for all of them together, in an app context (`stream_sessions`).
        """
        self.app = app
        self.ended_among = ended_among
        self.hub = hub
        self.settings = settings
        self.resume_from = resume_from
        self.subscriber = Subscriber(channels, session_id=session_id, maxsize=settings.queue_size)
        self.cursor: Cursor = {}  # where the client is, once open
        self.closed = False
        lifetime = settings.max_lifetime_seconds
        self.deadline = time.monotonic() + lifetime * random.uniform(0.9, 1.0)  # noqa: S311

    def open(self) -> list[str]:
        """Subscribe, read what the client missed, and return the stream's first chunks.

        The chunks are `retry:`, a `stream.reset` where history is gone, and the
        missed events; the subscription is confirmed before the missed events
        are read, so nothing published meanwhile is lost. Raises
        `HubUnavailable` (and Redis errors) with nothing left subscribed.
        """
        with self._app_context():
            # The check first: a sweep that sees this stream then asks this stream's check.
            sweep_for(self.hub).use(
                app=self.app, ended_among=self.ended_among, every=self.settings.revalidate_seconds
            )
            self.hub.add(self.subscriber)
            try:
                cursor, missed, reset = self._catch_up()
            except BaseException:
                self.close()
                raise
        self.cursor = cursor
        self.resume_from = None  # read: not kept for the stream's life
        chunks = [f"retry: {self.settings.retry_ms}\n\n"]
        if reset:
            channels = ",".join(f'"{c}"' for c in reset)
            chunks.append(frame("stream.reset", f'{{"channels":[{channels}]}}', cursor))
        for event in missed:
            cursor[event.channel] = event.id
            chunks.append(frame(event.type, event.data, cursor))
        if missed:
            DELIVERED.inc(len(missed))
        return chunks

    def _app_context(self) -> AbstractContextManager[object]:
        """The app's context: the current one when the caller is already in it (a view)."""
        if has_app_context() and current_app._get_current_object() is self.app:  # type: ignore[attr-defined]
            return contextlib.nullcontext()
        return self.app.app_context()

    def close(self) -> None:
        """Stop receiving events (idempotent)."""
        if not self.closed:
            self.closed = True
            self.hub.remove(self.subscriber)

    def __iter__(self) -> Iterator[str]:
        """Yield the whole stream: `open()`'s chunks, then `live()`."""
        try:
            yield from self.open()
            yield from self.live()
        finally:
            self.close()

    def _catch_up(self) -> tuple[Cursor, list[Event], list[str]]:
        """The cursor to go live from, the missed events to replay, and the channels reset.

        Runs once the subscription is confirmed: every event newer than what it
        reads also reaches the subscriber, and `live` skips those already replayed
        or older than the starting point, so there is no gap and no duplicate.
        A channel the client has no position for starts from its newest event;
        one whose missed events are gone, or every channel after a garbled
        `Last-Event-ID`, is reset (it starts from its newest event too). One
        Redis round trip, two when some history is gone; none for the channels
        whose newest event the hub knows (`HubPositions`, when the app asks it).
        """
        client = get_redis()
        channels = self.subscriber.channels
        malformed = self.resume_from == {}
        resumed = {} if malformed else self.resume_from or {}
        newest, since = self._hub_positions(channels)
        known = {channel: resumed[channel] for channel in channels if channel in resumed}
        behind = {c: at for c, at in known.items() if newest.get(c) != at}
        histories = histories_after(client, behind, limit=self.settings.replay_limit)
        gone = [channel for channel, (_, complete) in histories.items() if not complete]
        starting = [c for c in channels if c not in known or c in gone]
        unread = [c for c in starting if c not in newest]
        cursor = {**known, **{c: newest[c] for c in starting if c in newest}}
        cursor.update(self._read_newest(client, unread, since))
        missed: list[Event] = []
        for events, complete in histories.values():
            if complete:
                missed.extend(events)
        missed.sort(key=lambda event: event.position)
        return cursor, missed, list(channels) if malformed else gone

    def _hub_positions(self, channels: list[str]) -> tuple[Cursor, dict[str, Since]]:
        """What the hub knows of `channels`' newest events, if the app asks it (else nothing)."""
        if not self.app.extensions.get(HUB_POSITIONS):
            return {}, {}
        return self.hub.positions.snapshot(channels)

    def _read_newest(
        self, client: redis.Redis, channels: list[str], since: dict[str, Since]
    ) -> Cursor:
        """The newest ids of `channels` from Redis, taught to the hub where it may learn them."""
        if not channels:
            return {}
        read = latest_ids(client, channels)
        for channel, confirmation in since.items():
            if channel in read:
                self.hub.positions.learn(channel, read[channel], confirmation)
        return read

    def live(self, opening: str = "") -> Generator[str, None, None]:
        """Yield `opening` (`open()`'s chunks, joined), then live events and heartbeats; close.

        Ends at the stream's lifetime, or when the hub ends it (revoked, found
        ended, overflow, shutdown: then with a `retry:` hint). One generator
        carries the whole body, with no delegation while it waits: its frame
        and stack are what a held stream keeps.
        """
        cursor = self.cursor
        last_write = time.monotonic()
        # The wake-up asked of the clock moves on only once reached: a busy stream asks
        # for one per heartbeat period, not one per event.
        wake_at = self._next_beat(last_write)
        try:
            if opening:
                yield opening
                del opening  # sent: not kept for the stream's life
            while self.subscriber.ended is None and time.monotonic() < self.deadline:
                event = self.subscriber.next_event(wake_at)
                now = time.monotonic()
                chunk = self._chunk(event, cursor, beat=now >= self._next_beat(last_write))
                if chunk is not None:
                    last_write = now
                    yield chunk
                if now >= wake_at:
                    wake_at = self._next_beat(last_write)
            if self.subscriber.ended == "shutdown":
                yield self._resume_hint()
        finally:
            self.close()

    def _next_beat(self, written_at: float) -> float:
        """When to send a heartbeat after a write at `written_at`: within `heartbeat_seconds`.

        Rounded (down by at most a quantum) so that the streams written to in the
        same instant, a storm's, wake up together.
        """
        heartbeat = self.settings.heartbeat_seconds
        quantum = min(HEARTBEAT_QUANTUM, heartbeat / 4)
        return round_up(written_at + heartbeat - quantum, quantum)

    def _chunk(self, event: Event | None, cursor: Cursor, *, beat: bool) -> str | None:
        """The frame of `event` if the client lacks it, else a heartbeat if one is due."""
        if event is not None and event.position > _position(cursor, event.channel):
            cursor[event.channel] = event.id
            return frame(event.type, event.data, cursor)
        if beat:
            return ": keep-alive\n\n"
        return None

    def _resume_hint(self) -> str:
        """A `retry:` for a stream the process ends as it shuts down: reconnect soon, elsewhere.

        Spread over a tenth to all of `retry_ms`, so that the streams of an instance
        do not all reconnect to the others at once.
        """
        retry_ms = self.settings.retry_ms
        return f"retry: {random.randint(max(1, retry_ms // 10), max(1, retry_ms))}\n\n"  # noqa: S311


# When a channel's next event comes, each of its streams holds the same last id: one parse
# per event, not one per stream. Bounded, as a resumed stream's ids come from its client.
_parsed = functools.lru_cache(maxsize=4096)(parse_id)


def _position(cursor: Cursor, channel: str) -> tuple[int, int]:
    return _parsed(cursor.get(channel, "0-0"))


class StreamBody:
    """An opened stream as a WSGI response body: its first chunks, then `live()`.

    `close()` (every WSGI server calls it when the response ends or the client
    goes) unsubscribes, even when iteration never began.
    """

    __slots__ = ("_live", "first", "stream")

    def __init__(self, stream: EventStream, first: list[str]) -> None:
        """Wrap `stream`, already opened, whose `open()` returned `first`."""
        self.stream = stream
        self.first = first
        self._live: Generator[str, None, None] | None = None

    def __iter__(self) -> Iterator[str]:
        """The chunks: the first ones joined (one write), then the live ones, from one generator."""
        opening, self.first = "".join(self.first), []  # sent once; not kept for the stream's life
        self._live = self.stream.live(opening)
        return self._live

    def close(self) -> None:
        """End the stream."""
        live = self._live
        if live is not None:
            live.close()
        self.stream.close()

    def __del__(self) -> None:
        # A body dropped unclosed (a caller that read only the first chunks) still
        # unsubscribes: `live()` never started has no `finally` to run.
        self.stream.close()
