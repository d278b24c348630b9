"""Redis round trips shared by the callers that arrive together: one pipeline for a crowd.

Speeds up: opening event streams in a reconnect storm (each open makes two
`redis_store.round_trip` calls: session and role, then where each channel
starts), measured by the storm rows of `bench/sse.py`. A round trip costs a
pooled connection taken and given back, a write and a read system call and
redis-py's pipeline bookkeeping, whatever it carries; when hundreds of streams
open in the same instant, their commands can share them.

What it does instead: the first caller becomes the leader; it yields once
(so that the callers already runnable in this instant queue their commands),
sends every queued command in one pipeline, hands each caller its own replies
and, if more queued meanwhile, makes the oldest of them the next leader.
Alone, a caller pays one extra yield; in a crowd, one round trip serves all.

Why it is correct: each caller's commands stay in order and contiguous, and
each caller gets back exactly its replies, parsed as redis-py parses them; a
command Redis refuses fails only its caller, a connection error fails the
whole batch (each caller raises it, as with its own pipeline). Callers wait
for their replies, so anything that must happen after a read (a stream
subscribes, then reads where it starts) still does. Only `round_trip` on the
app's own client goes through here. Costs: none held; one lock per call.
Tests: `tests/optimizations/test_round_trips.py`.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from flask import Flask

from backend.redis_store import ROUND_TRIPS, Command, get_redis


class _Call:
    """One caller's commands and, once sent, its replies (or the error of the batch)."""

    def __init__(self, commands: list[Command]) -> None:
        self.commands = commands
        self.replies: list[Any] = []
        self.error: BaseException | None = None
        self.lead = False  # woken to send the next batch rather than with replies
        self.done = threading.Event()

    def result(self) -> list[Any]:
        if self.error is not None:
            raise self.error
        for reply in self.replies:
            if isinstance(reply, Exception):
                raise reply
        return self.replies


class SharedRoundTrips:
    """Runs `round_trip` batches on the app's Redis client, sharing pipelines between callers.

    Called in an app context (as `round_trip` is), it sends on `get_redis()`.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queued: list[_Call] = []
        self._leading = False
        self.batches_sent = 0  # for the tests: fewer than the calls when they shared

    def __call__(self, commands: list[Command]) -> list[Any]:
        """Run `commands` in a round trip shared with whoever else is queued; return replies."""
        call = _Call(commands)
        with self._lock:
            self._queued.append(call)
            lead = not self._leading
            self._leading = True
        if lead:
            time.sleep(0)  # let the callers runnable in this same instant queue theirs
        else:
            call.done.wait()
        if lead or call.lead:
            self._send_batch()
            call.done.wait()
        return call.result()

    def _send_batch(self) -> None:
        with self._lock:
            batch, self._queued = self._queued, []
        self._send(batch)
        with self._lock:
            if self._queued:
                following = self._queued[0]
                following.lead = True
                following.done.set()
            else:
                self._leading = False

    def _send(self, batch: list[_Call]) -> None:
        self.batches_sent += 1
        try:
            with get_redis().pipeline(transaction=False) as pipe:
                for call in batch:
                    for command in call.commands:
                        pipe.execute_command(*command)
                replies = pipe.execute(raise_on_error=False)
        except Exception as exc:  # noqa: BLE001 - each caller raises it, as alone it would
            for call in batch:
                call.error = exc
                call.done.set()
            return
        start = 0
        for call in batch:
            call.replies = replies[start : start + len(call.commands)]
            start += len(call.commands)
            call.lead = False
            call.done.set()


def init_app(app: Flask) -> None:
    """Share the app's Redis round trips (`redis_store.round_trip`) between callers."""
    app.extensions[ROUND_TRIPS] = SharedRoundTrips()
