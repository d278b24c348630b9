"""Streams start from the newest events the hub knows: no Redis read for where they start.

Speeds up: opening event streams in a reconnect storm, measured by the storm rows
of `bench/sse.py` (README, "Optimisations"). Each stream that has no position on
a channel (a new client, or every channel after `stream.reset`) reads the
channel's newest id from Redis after subscribing; one that resumes reads the
history after its position. In a storm that is one of the two Redis round trips
of every open, for the same few channels.

What it does instead: the stream asks the hub (`backend.hub_positions`), which
learned a channel's newest id from the first stream that read it after the
hub's subscription was confirmed and has seen every event of the channel since.
A channel it knows costs nothing; a stream resuming at exactly that event has
nothing to replay and reads nothing either. The rest is read as on the main
path, and teaches the hub.

Why it is correct: see `backend.hub_positions` (the newest id is updated in the
same locked step that picks an event's subscribers, and forgotten when the
subscription ends or the connection drops, which also ends every stream). Costs:
a dict entry per channel the hub holds. Tests: `tests/optimizations/test_hub_positions.py`.
"""

from __future__ import annotations

from flask import Flask

from backend.streaming import HUB_POSITIONS


def init_app(app: Flask) -> None:
    """Let `app`'s streams start from what the hub knows."""
    app.extensions[HUB_POSITIONS] = True
