"""Where each channel a hub holds stands: its newest event, learned once, then kept by the hub.

A stream that opens with no position on a channel starts from the channel's
newest event, which costs a Redis read; in a reconnect storm, tens of thousands
of streams read the same few channels' newest ids. The hub sees every event of
the channels it is subscribed to, so once one stream has read a channel's newest
id *after* the hub's subscription to it was confirmed, the newest of that id and
of every event the hub delivered since is the channel's newest event for as long
as the subscription lasts. A stream added to the hub and then given that id
misses nothing (every later event passes through the hub, after the stream was
added) and gets nothing twice (the live filter skips what is not newer). An
event published an instant before the stream opened that the hub has not yet
received is not lost either: the stream starts before it, and it is delivered.

The hub tells this tracker, in its own order: a subscription confirmed, each
event fanned out (in the same locked step that picks the event's subscribers),
a channel dropped, the connection reset (which forgets everything). A read id
counts only for the confirmation it was read after (a `Since`), so a read that
raced a reset or a resubscription teaches nothing.

Used only by the streams of an app with the optimisation layer on
(`backend.optimizations.hub_positions`); without it the hub still keeps this
up to date (a dict write per event) but nobody asks.
"""

from __future__ import annotations

import threading

from backend.events import Event, parse_id

Position = tuple[int, int]


class Since:
    """One confirmation of a channel's subscription (compared by identity)."""

    __slots__ = ()


class HubPositions:
    """The newest event id of each channel a hub holds, where it is known."""

    def __init__(self) -> None:
        """Start knowing nothing."""
        self._lock = threading.Lock()
        self._since: dict[str, Since] = {}  # channel -> its current confirmation
        self._seen: dict[str, tuple[Position, str]] = {}  # newest delivered since then
        self._known: set[str] = set()  # channels whose `_seen` is their newest event

    def confirmed(self, channel: str) -> None:
        """The hub's subscription to `channel` is confirmed: start over for it."""
        with self._lock:
            self._since[channel] = Since()
            self._seen.pop(channel, None)
            self._known.discard(channel)

    def delivered(self, event: Event) -> None:
        """The hub fans `event` out (called in the step that picks its subscribers)."""
        with self._lock:
            if event.channel in self._since:
                self._note(event.channel, event.position, event.id)

    def dropped(self, channel: str) -> None:
        """The hub no longer reads `channel`."""
        with self._lock:
            self._since.pop(channel, None)
            self._seen.pop(channel, None)
            self._known.discard(channel)

    def reset(self) -> None:
        """The hub's connection was lost: every subscription starts over."""
        with self._lock:
            self._since.clear()
            self._seen.clear()
            self._known.clear()

    def snapshot(self, channels: list[str]) -> tuple[dict[str, str], dict[str, Since]]:
        """Return the newest ids known for `channels`, and the confirmation of the others.

        Ask after the stream was added to the hub; a channel in neither part is
        not (or no longer) confirmed.
        """
        newest: dict[str, str] = {}
        since: dict[str, Since] = {}
        with self._lock:
            for channel in channels:
                if channel in self._known:
                    newest[channel] = self._seen[channel][1]
                elif channel in self._since:
                    since[channel] = self._since[channel]
        return newest, since

    def learn(self, channel: str, newest_id: str, since: Since) -> None:
        """`newest_id` was read from Redis after confirmation `since`: know it, if that holds."""
        position = parse_id(newest_id)
        with self._lock:
            if self._since.get(channel) is since:
                self._note(channel, position, newest_id)
                self._known.add(channel)

    def _note(self, channel: str, position: Position, event_id: str) -> None:
        seen = self._seen.get(channel)
        if seen is None or position > seen[0]:
            self._seen[channel] = (position, event_id)
