"""The event stream asks the session check it is given, and knows nothing of accounts.

The check is asked for all of a process's streams at once (`stream_sessions`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator

import pytest
import redis
from flask import Flask

from backend.events import publish
from backend.redis_store import redis_url
from backend.sse import hub_for
from backend.streaming import EventStream, StreamSettings

QUICK = StreamSettings(heartbeat_seconds=0.05, revalidate_seconds=0.05, max_lifetime_seconds=5)
PERIOD = StreamSettings(heartbeat_seconds=0.4, max_lifetime_seconds=30)  # heartbeats to time
SWEPT = StreamSettings(heartbeat_seconds=0.5, revalidate_seconds=0.05, max_lifetime_seconds=5)


def none_ended(session_ids: set[int]) -> set[int]:
    return set()


@pytest.fixture
def stream_app(make_app: Callable[..., Flask]) -> Iterator[Flask]:
    app = make_app()
    with app.app_context():
        yield app


def a_stream(
    app: Flask,
    ended_among: Callable[[set[int]], set[int]] = none_ended,
    settings: StreamSettings = QUICK,
    session_id: int = 7,
) -> EventStream:
    return EventStream(
        app=app, hub=hub_for(redis_url(app)), channels=["user:1"], session_id=session_id,
        resume_from=None, settings=settings, ended_among=ended_among,
    )  # fmt: skip


def test_the_streams_of_the_sessions_the_check_names_end_and_only_those(stream_app: Flask) -> None:
    asked: list[set[int]] = []

    def seven_ended(session_ids: set[int]) -> set[int]:
        asked.append(session_ids)
        return {7, 99}  # a session with no stream here is ignored

    kept = iter(a_stream(stream_app, seven_ended, SWEPT, session_id=8))
    assert next(kept) == "retry: 3000\n\n"
    assert list(a_stream(stream_app, seven_ended, SWEPT)) == ["retry: 3000\n\n"]  # no beat
    assert next(kept) == ": keep-alive\n\n"
    assert {7, 8} in asked  # both sessions in one check
    assert all(session_ids <= {7, 8} for session_ids in asked)
    kept.close()  # type: ignore[attr-defined]


def test_streams_go_on_while_the_check_names_none_or_cannot_answer(stream_app: Flask) -> None:
    def unreachable(session_ids: set[int]) -> set[int]:
        raise redis.ConnectionError("Redis is down")  # the hub's push still ends revoked streams

    for check in (none_ended, unreachable):
        body = iter(a_stream(stream_app, check))
        assert next(body) == "retry: 3000\n\n"
        time.sleep(0.15)  # a few sweeps
        assert next(body) == ": keep-alive\n\n"
        body.close()  # type: ignore[attr-defined]


def test_heartbeats_come_within_the_heartbeat_period_of_the_last_write(stream_app: Flask) -> None:
    stream = a_stream(stream_app, settings=PERIOD)
    body = iter(stream)
    assert next(body) == "retry: 3000\n\n"
    for _ in range(3):
        written = time.monotonic()
        assert next(body) == ": keep-alive\n\n"
        # Rounded to the clock's quantum (a tenth of the period here), never later.
        assert 0.3 - 0.01 <= time.monotonic() - written < 0.4 + 0.6  # (a busy machine is late)
    body.close()  # type: ignore[attr-defined]


def test_a_busy_stream_asks_the_clock_once_per_period_and_beats_after_its_last_write(
    stream_app: Flask,
) -> None:
    stream = a_stream(stream_app, settings=PERIOD)
    body = iter(stream)
    assert next(body) == "retry: 3000\n\n"
    asked: list[float] = []
    for n in range(4):
        time.sleep(0.05)
        publish("user:1", "note", {"n": n})  # the first may come before the stream waited
        assert "event: note" in next(body)
        asked.append(stream.subscriber.waits_until)
    asked = asked[1:]
    written = time.monotonic()
    assert len(set(asked)) == 1  # the events did not move the wake-up
    assert next(body) == ": keep-alive\n\n"
    assert time.monotonic() - written >= 0.3 - 0.01  # a period after the last event, not before
    body.close()  # type: ignore[attr-defined]


def delivered_total(app: Flask) -> float:
    text = app.test_client().get("/metrics").get_data(as_text=True)
    return float(re.search(r"^sse_events_delivered_total (\S+)$", text, re.M)[1])  # type: ignore[index]


def test_replayed_and_live_events_are_counted_as_delivered(stream_app: Flask) -> None:
    channel = "user:4242"  # read by no other stream of the process
    seen = publish(channel, "note", {"n": 0})
    publish(channel, "note", {"n": 1})
    before = delivered_total(stream_app)
    stream = EventStream(
        app=stream_app, hub=hub_for(redis_url(stream_app)), channels=[channel], session_id=7,
        resume_from={channel: seen}, settings=PERIOD, ended_among=none_ended,
    )  # fmt: skip
    body = iter(stream)
    assert next(body) == "retry: 3000\n\n"
    assert '"n":1' in next(body).replace(" ", "")  # replayed
    publish(channel, "note", {"n": 2})
    assert '"n":2' in next(body).replace(" ", "")  # live
    body.close()  # type: ignore[attr-defined]
    assert delivered_total(stream_app) - before == 2
