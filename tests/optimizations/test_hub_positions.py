"""Streams start from the newest events the hub knows, with no gap and no duplicate.

Which Redis reads a stream made is seen in Redis's own command counts
(`INFO commandstats`); each test reads channels of its own, so what the
process-wide hub learned in other tests does not count.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import cast

import pytest
from flask import Flask

from backend.events import Event, parse_id, publish, stream_key
from backend.hub_positions import HubPositions
from backend.redis_store import get_redis, redis_url
from backend.sse import hub_for
from backend.streaming import Cursor, EventStream, StreamSettings
from tests.support.sse import frames

QUICK = StreamSettings(heartbeat_seconds=0.05, max_lifetime_seconds=30, queue_size=100_000)


@pytest.fixture
def channel() -> str:
    return f"positions-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def fast_app(make_app: Callable[..., Flask]) -> Iterator[Flask]:
    app = make_app(OPTIMIZATIONS=True)
    with app.app_context():
        yield app


def a_stream(app: Flask, channel: str, resume_from: Cursor | None = None) -> EventStream:
    return EventStream(
        app=app, hub=hub_for(redis_url(app)), channels=[channel], session_id=1,
        resume_from=resume_from, settings=QUICK, ended_among=lambda session_ids: set(),
    )  # fmt: skip


def reads(command: str) -> int:
    """How many times Redis has run `command` so far."""
    stats = get_redis().info("commandstats")
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


def opened(stream: EventStream) -> Iterator[str]:
    """Open `stream` and return its chunks from then on (first ones included)."""
    return itertools.chain(stream.open(), stream.live())


def events_until(chunks: Iterator[str], last_id: str) -> list[str]:
    """The event ids of `chunks` (one channel) up to and including `last_id`."""
    seen: list[str] = []
    for frame in frames(chunks):
        if frame.event is None or frame.id is None:
            continue
        seen.append(frame.id.rpartition("=")[2])
        if seen[-1] == last_id:
            return seen
    raise AssertionError(f"the stream ended before {last_id}: {seen}")


def test_a_second_stream_starts_where_the_hub_knows_without_reading_redis(
    fast_app: Flask, channel: str
) -> None:
    before = publish(channel, "note", {"n": 0})
    first = a_stream(fast_app, channel)
    first_chunks = opened(first)
    assert first.cursor == {channel: before}
    seen = publish(channel, "note", {"n": 1})
    assert events_until(first_chunks, seen) == [seen]  # so the hub has seen it too
    counted = reads("xrevrange")
    second = a_stream(fast_app, channel)
    chunks = opened(second)
    assert reads("xrevrange") == counted
    assert second.cursor == {channel: seen}
    after = publish(channel, "note", {"n": 2})
    assert events_until(chunks, after) == [after]  # not `seen`, which it starts after
    first.close()
    second.close()


def test_a_stream_resuming_at_the_newest_event_reads_nothing(fast_app: Flask, channel: str) -> None:
    publish(channel, "note", {"n": 0})
    holder = a_stream(fast_app, channel)
    held = opened(holder)
    newest = publish(channel, "note", {"n": 1})
    assert events_until(held, newest) == [newest]  # so the hub has seen it too
    counted = reads("xrange"), reads("xrevrange")
    resumed = a_stream(fast_app, channel, resume_from={channel: newest})
    chunks = opened(resumed)
    assert (reads("xrange"), reads("xrevrange")) == counted
    after = publish(channel, "note", {"n": 2})
    assert events_until(chunks, after) == [after]
    holder.close()
    resumed.close()


def test_a_stream_resuming_behind_replays_what_it_missed(fast_app: Flask, channel: str) -> None:
    missed_from = publish(channel, "note", {"n": 0})
    holder = a_stream(fast_app, channel)
    holder.open()
    missed = [publish(channel, "note", {"n": n}) for n in (1, 2)]
    resumed = a_stream(fast_app, channel, resume_from={channel: missed_from})
    assert events_until(opened(resumed), missed[-1]) == missed
    holder.close()
    resumed.close()


def test_without_the_layer_every_stream_reads_where_it_starts(
    make_app: Callable[..., Flask], channel: str
) -> None:
    app = make_app(OPTIMIZATIONS=False)
    with app.app_context():
        publish(channel, "note", {"n": 0})
        streams = [a_stream(app, channel) for _ in range(2)]
        counted = reads("xrevrange")
        for stream in streams:
            stream.open()
        assert reads("xrevrange") == counted + 2
        for stream in streams:
            stream.close()


def test_streams_opened_while_events_flow_miss_none_and_repeat_none(
    fast_app: Flask, channel: str
) -> None:
    """Each stream gets exactly the events after the position it started from."""
    publish(channel, "note", {"n": 0})
    done = threading.Event()
    published: list[str] = []

    def publisher() -> None:
        with fast_app.app_context():
            while not done.is_set():
                published.append(publish(channel, "note", {"n": len(published)}))

    streams: list[tuple[EventStream, Iterator[str], str]] = []
    thread = threading.Thread(target=publisher)
    thread.start()
    try:
        while len(streams) < 20:
            stream = a_stream(fast_app, channel)
            chunks = opened(stream)
            streams.append((stream, chunks, stream.cursor[channel]))
            time.sleep(0.005)  # events are published between the opens
    finally:
        done.set()
        thread.join()
    last = published[-1]
    client = get_redis()
    for stream, chunks, started_after in streams:
        start = parse_id(started_after)
        entries = cast(list[tuple[bytes, object]], client.xrange(stream_key(channel)))
        history = [entry_id.decode() for entry_id, _ in entries]
        expected = [i for i in history if parse_id(i) > start]
        assert events_until(chunks, last) == expected
        stream.close()
    assert len({started_after for *_, started_after in streams}) > 10  # they started apart


def test_a_read_teaches_only_the_confirmation_it_was_read_after() -> None:
    positions = HubPositions()
    positions.confirmed("c")
    _, since = positions.snapshot(["c", "unheld"])
    assert list(since) == ["c"]
    positions.confirmed("c")  # resubscribed meanwhile: the read may predate it
    positions.learn("c", "5-0", since["c"])
    assert positions.snapshot(["c"])[0] == {}
    _, since = positions.snapshot(["c"])
    positions.learn("c", "5-0", since["c"])
    assert positions.snapshot(["c"])[0] == {"c": "5-0"}


def test_the_newest_of_the_read_and_the_delivered_events_is_kept() -> None:
    positions = HubPositions()
    positions.confirmed("c")
    _, since = positions.snapshot(["c"])
    positions.delivered(Event("c", "7-0", "note", "{}"))  # after the read was sent
    positions.learn("c", "6-0", since["c"])
    assert positions.snapshot(["c"])[0] == {"c": "7-0"}
    positions.delivered(Event("c", "8-1", "note", "{}"))
    positions.delivered(Event("other", "9-0", "note", "{}"))  # not held: ignored
    assert positions.snapshot(["c", "other"]) == ({"c": "8-1"}, {})


@pytest.mark.parametrize("forget", ["dropped", "reset"])
def test_a_dropped_channel_or_a_lost_connection_forgets(forget: str) -> None:
    positions = HubPositions()
    positions.confirmed("c")
    positions.learn("c", "6-0", positions.snapshot(["c"])[1]["c"])
    getattr(positions, forget)(*(["c"] if forget == "dropped" else []))
    assert positions.snapshot(["c"]) == ({}, {})


def test_a_lost_hub_connection_makes_streams_read_again(fast_app: Flask, channel: str) -> None:
    publish(channel, "note", {"n": 0})
    hub = hub_for(redis_url(fast_app))
    holder = a_stream(fast_app, channel)
    holder.open()
    assert hub.positions.snapshot([channel])[0]
    get_redis().client_kill_filter(_type="pubsub")  # the hub's connection drops
    deadline = time.monotonic() + 10
    while holder.subscriber.ended is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert holder.subscriber.ended == "redis_disconnected"
    assert hub.positions.snapshot([channel])[0] == {}
    holder.close()
    counted = reads("xrevrange")
    again = a_stream(fast_app, channel)
    again.open()  # once the hub is back: read from Redis, and learned again
    assert reads("xrevrange") == counted + 1
    assert hub.positions.snapshot([channel])[0] == {channel: again.cursor[channel]}
    again.close()
