"""One clock per process that wakes waiting streams at the times they asked, in batches.

A box holds tens of thousands of idle event streams, each of which must send a
heartbeat every so often. A timer per waiting stream costs a timer object and
its start and stop on every wait (and under gevent a fresh Timeout that lives
until the next heartbeat, promoted through the collector's generations); this
clock keeps one bucket per wake-up time instead, and streams round their times
so that those due in the same instant share a bucket (`round_up`).

What it wakes is anything with `wake_up(when)`; a sleeper decides itself
whether a wake-up is still the one it waits for (it may have asked for a
later one since), so nothing is ever unscheduled.
"""

from __future__ import annotations

import heapq
import math
import threading
import time
from typing import Protocol


class Sleeper(Protocol):
    """What the clock wakes."""

    def wake_up(self, when: float) -> None:
        """The time `when` (asked for earlier) has come."""


def round_up(when: float, quantum: float) -> float:
    """`when` rounded up to a multiple of `quantum` (so that nearby times share a bucket)."""
    return math.ceil(when / quantum) * quantum


class WakeUpClock:
    """Wakes each sleeper at (or just after) the monotonic time it asked for."""

    def __init__(self) -> None:
        """An idle clock; its thread starts with the first wake-up asked for."""
        self._buckets: dict[float, list[Sleeper]] = {}
        self._times: list[float] = []  # heap of the buckets' times
        self._changed = threading.Condition(threading.Lock())
        self._thread: threading.Thread | None = None

    def wake_at(self, when: float, sleeper: Sleeper) -> None:
        """Call `sleeper.wake_up(when)` once `time.monotonic()` reaches `when`."""
        with self._changed:
            bucket = self._buckets.get(when)
            if bucket is not None:
                bucket.append(sleeper)
                return
            self._buckets[when] = [sleeper]
            heapq.heappush(self._times, when)
            if self._times[0] == when:
                self._changed.notify()  # sooner than what the clock waits for
            if self._thread is None or not self._thread.is_alive():  # none yet, or forked
                self._thread = threading.Thread(target=self._run, name="wake-ups", daemon=True)
                self._thread.start()

    def pending(self) -> int:
        """How many wake-ups are scheduled (stale ones included)."""
        with self._changed:
            return sum(len(bucket) for bucket in self._buckets.values())

    def _run(self) -> None:
        while True:
            when, due = self._next_due()
            for sleeper in due:
                sleeper.wake_up(when)

    def _next_due(self) -> tuple[float, list[Sleeper]]:
        """Wait for the earliest bucket's time; return it and its sleepers."""
        with self._changed:
            while True:
                now = time.monotonic()
                if self._times and self._times[0] <= now:
                    when = heapq.heappop(self._times)
                    return when, self._buckets.pop(when)
                self._changed.wait(self._times[0] - now if self._times else None)


clock = WakeUpClock()  # the process's one clock
