"""The event stream asks the session check it is given, and knows nothing of accounts."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
import redis
from flask import Flask

from backend.events import publish
from backend.redis_store import redis_url
from backend.sse import hub_for
from backend.streaming import EventStream, StreamSettings

QUICK = StreamSettings(heartbeat_seconds=0.05, revalidate_seconds=0.0, max_lifetime_seconds=5)
PERIOD = StreamSettings(heartbeat_seconds=0.4, max_lifetime_seconds=30)  # heartbeats to time


@pytest.fixture
def stream_app(make_app: Callable[..., Flask]) -> Iterator[Flask]:
    app = make_app()
    with app.app_context():
        yield app


def a_stream(
    app: Flask, session_active: Callable[[int], bool], settings: StreamSettings = QUICK
) -> EventStream:
    return EventStream(
        app=app, hub=hub_for(redis_url(app)), channels=["user:1"], session_id=7,
        resume_from=None, settings=settings, session_active=session_active,
    )  # fmt: skip


def test_a_stream_ends_once_its_session_check_says_no(stream_app: Flask) -> None:
    asked: list[int] = []

    def signed_out(session_id: int) -> bool:
        asked.append(session_id)
        return False

    assert list(a_stream(stream_app, signed_out)) == ["retry: 3000\n\n"]
    assert asked == [7]


def test_a_stream_goes_on_while_the_check_says_yes_or_cannot_answer(stream_app: Flask) -> None:
    def unreachable(session_id: int) -> bool:
        raise redis.ConnectionError("Redis is down")  # the hub's push still ends revoked streams

    for check in (lambda session_id: True, unreachable):
        body = iter(a_stream(stream_app, check))
        assert next(body) == "retry: 3000\n\n"
        assert next(body) == ": keep-alive\n\n"
        body.close()  # type: ignore[attr-defined]


def test_heartbeats_come_within_the_heartbeat_period_of_the_last_write(stream_app: Flask) -> None:
    stream = a_stream(stream_app, lambda session_id: True, PERIOD)
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
    stream = a_stream(stream_app, lambda session_id: True, PERIOD)
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
