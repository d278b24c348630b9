"""The events seam: `publish(channel, type, data)` for domain events.

Services and jobs call `publish_after_commit` inside their transaction (or
`publish` outside one); the event is delivered only once the data it
describes is committed. Each event is appended to a capped Redis Stream per
channel, whose entry id becomes the SSE `id:`, and a wake-up is published so
live subscribers fetch it. Works the same from web processes, workers and
the CLI.
"""

from __future__ import annotations

import json
from typing import Any

from flask import current_app

from backend.db import db
from backend.redis_store import get_redis

STREAM_PREFIX = "events:"
WAKE_CHANNEL = "events:wake"
DEFAULT_MAXLEN = 1000
DEFAULT_TTL_SECONDS = 24 * 3600


def stream_key(channel: str) -> str:
    """Return the Redis key of the stream that holds `channel`'s history."""
    return f"{STREAM_PREFIX}{channel}"


def publish(channel: str, type: str, data: dict[str, Any]) -> str:  # noqa: A002 - contract name
    """Append an event to `channel`'s stream now and wake subscribers; return its id."""
    config = current_app.config
    maxlen = int(config.get("EVENTS_MAXLEN", DEFAULT_MAXLEN))
    ttl = int(config.get("EVENTS_TTL_SECONDS", DEFAULT_TTL_SECONDS))
    payload = json.dumps(data, separators=(",", ":"), default=str)
    client = get_redis()
    key = stream_key(channel)
    with client.pipeline(transaction=True) as pipe:
        pipe.xadd(key, {"type": type, "data": payload}, maxlen=maxlen, approximate=True)
        pipe.expire(key, ttl)
        pipe.publish(WAKE_CHANNEL, channel)
        event_id = pipe.execute()[0]
    return event_id.decode() if isinstance(event_id, bytes) else str(event_id)


def publish_after_commit(channel: str, type: str, data: dict[str, Any]) -> None:  # noqa: A002
    """Publish once the current transaction commits (at once when none is open).

    A rolled-back transaction publishes nothing.
    """
    db.after_commit(lambda: publish(channel, type, data))
