"""The process's wake-up clock, and streams waiting on it instead of timers of their own."""

from __future__ import annotations

import threading
import time

from backend.events import Event
from backend.sse import Subscriber
from backend.wakeups import WakeUpClock, round_up


class Sleeper:
    def __init__(self, name: str, woken: list[tuple[str, float]], done: threading.Event) -> None:
        self.name, self.woken, self.done = name, woken, done

    def wake_up(self, when: float) -> None:
        self.woken.append((self.name, when))
        if self.name == "last":
            self.done.set()


def test_sleepers_wake_in_time_order_those_of_one_time_together() -> None:
    clock, done = WakeUpClock(), threading.Event()
    woken: list[tuple[str, float]] = []
    now = time.monotonic()
    later, sooner = now + 0.3, now + 0.1
    for name, when in [("b1", later), ("last", now + 0.4), ("b2", later), ("a", sooner)]:
        clock.wake_at(when, Sleeper(name, woken, done))  # "a" is sooner than all asked before
    assert clock.pending() == 4
    assert done.wait(5)
    assert woken == [("a", sooner), ("b1", later), ("b2", later), ("last", now + 0.4)]
    assert time.monotonic() >= now + 0.4
    assert clock.pending() == 0


def test_times_round_up_to_a_shared_quantum() -> None:
    assert round_up(10.01, 0.25) == 10.25
    assert round_up(10.25, 0.25) == 10.25
    assert round_up(14.99, 0.25) == 15.0


def an_event(event_id: str) -> Event:
    return Event("c", event_id, "note", "{}")


def test_a_waiting_stream_returns_nothing_once_its_time_is_up() -> None:
    subscriber = Subscriber(["c"], session_id=1, maxsize=10)
    started = time.monotonic()
    assert subscriber.next_event(started + 0.1) is None
    assert 0.1 <= time.monotonic() - started < 2
    assert subscriber.next_event(started) is None  # already past: no wait at all


def test_an_offer_wakes_it_before_its_time() -> None:
    subscriber = Subscriber(["c"], session_id=1, maxsize=10)
    threading.Timer(0.05, subscriber.offer, [an_event("1-0")]).start()
    started = time.monotonic()
    first = subscriber.next_event(started + 30)
    assert first is not None
    assert first.id == "1-0"
    assert time.monotonic() - started < 5


def test_only_the_wake_up_it_waits_for_wakes_it() -> None:
    subscriber = Subscriber(["c"], session_id=1, maxsize=10)
    asked_first, waits_for = time.monotonic() + 30, time.monotonic() + 60
    returned: list[Event | None] = []
    waiter = threading.Thread(target=lambda: returned.append(subscriber.next_event(waits_for)))
    waiter.start()
    while subscriber.waits_until != waits_for:
        time.sleep(0.01)
    subscriber.wake_up(asked_first)  # stale: asked for before a write moved its heartbeat
    waiter.join(0.2)
    assert waiter.is_alive()
    subscriber.wake_up(waits_for)
    waiter.join(5)
    assert returned == [None]
