"""The events seam: `publish(channel, type, data)` and reading a channel's history.

Services and jobs call `publish_after_commit` inside their transaction (or
`publish` outside one), so an event goes out only once the data it describes
is committed. One Lua call appends the event to the channel's capped Redis
Stream (its entry id is the SSE `id:`) and publishes it on the channel's
live Pub/Sub channel, so the stream order and the live order are the same.
Works the same from web processes, workers and the CLI.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, cast

import redis
from flask import current_app

from backend.db import db
from backend.redis_store import get_redis, round_trip

STREAM_PREFIX = "events:"
LIVE_PREFIX = "events:live:"
DEFAULT_MAXLEN = 1000
DEFAULT_TTL_SECONDS = 24 * 3600

COUNTER_PREFIX = "events:n:"
MAX_STREAM_PART = 2**64 - 1  # each half of a Redis stream id is an unsigned 64-bit integer
Entries = list[tuple[bytes, dict[bytes, bytes]]]

# Each entry also carries `n`, its position in the channel since the counter
# began, so a client that saw nothing can tell whether anything was trimmed.


def publish_lua(first_key: int, first_arg: int) -> str:
    """Lua that publishes one event as `publish` does, for use inside larger scripts.

    It reads `publish_keys(channel)` from `KEYS[first_key:]` and
    `publish_args(type, data)` from `ARGV[first_arg:]`, and leaves the event id
    in the local variable `event_id`.
    """
    k = [f"KEYS[{first_key + i}]" for i in range(3)]
    a = [f"ARGV[{first_arg + i}]" for i in range(4)]
    return f"""
local n = redis.call('INCR', {k[2]})
redis.call('EXPIRE', {k[2]}, {a[3]})
local event_id = redis.call('XADD', {k[0]}, 'MAXLEN', '~', {a[0]}, '*',
                            'type', {a[1]}, 'data', {a[2]}, 'n', n)
redis.call('EXPIRE', {k[0]}, {a[3]})
redis.call('PUBLISH', {k[1]}, event_id .. '\\n' .. {a[1]} .. '\\n' .. {a[2]})
"""


def publish_keys(channel: str) -> list[str]:
    """The keys `publish_lua` needs for `channel`, in order."""
    return [stream_key(channel), live_channel(channel), f"{COUNTER_PREFIX}{channel}"]


def publish_args(type: str, data: dict[str, Any]) -> list[Any]:  # noqa: A002 - contract name
    """The arguments `publish_lua` needs for one event, in order."""
    config = current_app.config
    return [
        int(config.get("EVENTS_MAXLEN", DEFAULT_MAXLEN)),
        type,
        json.dumps(data, separators=(",", ":"), default=str),
        int(config.get("EVENTS_TTL_SECONDS", DEFAULT_TTL_SECONDS)),
    ]


_PUBLISH = publish_lua(1, 1) + "return event_id\n"


@dataclass(frozen=True)
class Event:
    """One event of one channel."""

    channel: str
    id: str
    type: str
    data: str  # JSON text, passed through untouched
    # The stream id as a comparable pair: parsed once, compared by every stream it reaches.
    position: tuple[int, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Parse the id (`ValueError` if it is none)."""
        object.__setattr__(self, "position", parse_id(self.id))


def stream_key(channel: str) -> str:
    """Return the Redis key of the stream that holds `channel`'s history."""
    return f"{STREAM_PREFIX}{channel}"


def live_channel(channel: str) -> str:
    """Return the Pub/Sub channel on which `channel`'s events go out live."""
    return f"{LIVE_PREFIX}{channel}"


def parse_id(stream_id: str) -> tuple[int, int]:
    """Turn a stream id (`"1700000000000-3"`) into `(1700000000000, 3)`.

    Raises `ValueError` for anything else, including parts Redis would refuse
    (signs, spaces, underscores, or beyond 64 bits).
    """
    millis, _, seq = stream_id.partition("-")
    parts = (millis, seq or "0")
    if not all(part.isascii() and part.isdigit() for part in parts):
        raise ValueError(f"not a stream id: {stream_id!r}")
    numbers = int(parts[0]), int(parts[1])
    if max(numbers) > MAX_STREAM_PART:
        raise ValueError(f"stream id out of range: {stream_id!r}")
    return numbers


def publish(channel: str, type: str, data: dict[str, Any]) -> str:  # noqa: A002 - contract name
    """Append an event to `channel`'s history and send it live now; return its id."""
    script = get_redis().register_script(_PUBLISH)
    event_id = script(keys=publish_keys(channel), args=publish_args(type, data))
    return event_id.decode() if isinstance(event_id, bytes) else str(event_id)


def publish_after_commit(channel: str, type: str, data: dict[str, Any]) -> None:  # noqa: A002
    """Publish once the current transaction commits (at once when none is open).

    A rolled-back transaction publishes nothing.
    """
    db.after_commit(lambda: publish(channel, type, data))


def decode_live(channel: str, message: bytes) -> Event:
    """Parse a live Pub/Sub message of `channel`."""
    event_id, type_, data = message.decode().split("\n", 2)
    return Event(channel, event_id, type_, data)


def latest_id(client: redis.Redis, channel: str) -> str:
    """Return the id of the newest event of `channel` (`"0-0"` when it has none)."""
    return latest_ids(client, [channel])[channel]


def latest_ids(client: redis.Redis, channels: list[str]) -> dict[str, str]:
    """Return the id of the newest event of each channel (`"0-0"` for none), in one round trip."""
    newest = cast(
        list[Entries],
        round_trip(client, [("XREVRANGE", stream_key(c), "+", "-", "COUNT", 1) for c in channels]),
    )
    return {
        channel: _decode(entries[0][0]) if entries else "0-0"
        for channel, entries in zip(channels, newest, strict=True)
    }


def history_after(
    client: redis.Redis, channel: str, after: str, *, limit: int
) -> tuple[list[Event], bool]:
    """Return the events of `channel` after id `after`, oldest first, and whether all are there.

    `after` is the id of the last event the client saw, or `"0-0"` for none.
    False means some events after it are gone (trimmed, expired, lost in a
    Redis restart), `after` is unknown, or more than `limit` are missing:
    the client must refetch. Raises `ValueError` for an `after` that is no id.
    """
    return histories_after(client, {channel: after}, limit=limit)[channel]


def histories_after(
    client: redis.Redis, positions: dict[str, str], *, limit: int
) -> dict[str, tuple[list[Event], bool]]:
    """`history_after` for each channel of `positions` (channel → last id seen), one round trip."""
    if not positions:
        return {}
    for after in positions.values():
        parse_id(after)  # ValueError for garbage
    # From the last seen event itself: trimming removes the oldest entries first,
    # so if it is still there, everything after it is too.
    replies = cast(
        list[Entries],
        round_trip(client, [
            ("XRANGE", stream_key(channel), "-" if after == "0-0" else after, "+",
             "COUNT", limit + 2)
            for channel, after in positions.items()
        ]),
    )  # fmt: skip
    return {
        channel: _history(channel, after, entries, limit)
        for (channel, after), entries in zip(positions.items(), replies, strict=True)
    }


def _history(channel: str, after: str, entries: Entries, limit: int) -> tuple[list[Event], bool]:
    if after == "0-0":
        # Nothing seen: complete only if the channel's first event is still kept.
        complete = not entries or entries[0][1].get(b"n") == b"1"
    else:
        complete = bool(entries) and _decode(entries[0][0]) == after
        entries = entries[1:]
    if not complete or len(entries) > limit:
        return [], False
    return [_event(channel, entry_id, fields) for entry_id, fields in entries], True


def _decode(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _event(channel: str, entry_id: bytes, fields: dict[bytes, bytes]) -> Event:
    return Event(channel, _decode(entry_id), _decode(fields[b"type"]), _decode(fields[b"data"]))
