"""The 60-line shared-subscription baseline: one Redis subscriber per worker, gevent queues.

`bench/sse.py` runs it for the storm scenarios under the same gunicorn settings as ours
(`gunicorn -k gevent -w W --worker-connections C bench.sse_shared_baseline_app:app`, `REDIS_URL`
set). Each worker keeps one Pub/Sub connection (client name `shared-<pid>`), subscribed to a
channel by its first client and never unsubscribed; one greenlet reads it and copies each
message into the unbounded gevent queue of every client of that channel. Messages are
flask-sse's JSON dicts, so the publisher of `bench/sse_baseline_app.py` serves both. A stream
sends `retry: 3000` once Redis has confirmed its channel's subscription. No auth, replay,
heartbeats, lifetimes or backpressure: the anchors' "60-line shared-subscription app".
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import gevent  # type: ignore[import-untyped]
import redis
from flask import Flask, Response, request
from gevent.event import Event  # type: ignore[import-untyped]
from gevent.lock import RLock  # type: ignore[import-untyped]
from gevent.queue import Queue  # type: ignore[import-untyped]

from bench.sse_baseline_app import to_sse

app = Flask(__name__)
_lock = RLock()
_pubsub: list[Any] = []  # this worker's PubSub, once the first stream asks for it
_ready: dict[str, Any] = {}  # channel -> Event set when Redis confirms the subscription
_queues: defaultdict[str, set[Any]] = defaultdict(set)  # channel -> the clients' queues


def _listen(pubsub: Any) -> None:
    for item in pubsub.listen():
        channel = item["channel"].decode()
        if item["type"] == "subscribe" and channel in _ready:
            _ready[channel].set()
        elif item["type"] == "message":
            text = to_sse(json.loads(item["data"]))
            for queue in list(_queues[channel]):
                queue.put_nowait(text)


def _subscribed(channel: str) -> Any:
    """Return the Event of `channel`'s subscription, subscribing this worker first if needed."""
    with _lock:
        if not _pubsub:
            client = redis.Redis.from_url(
                os.environ["REDIS_URL"], client_name=f"shared-{os.getpid()}"
            )
            _pubsub.append(client.pubsub())
            _pubsub[0].subscribe("shared-baseline:keepalive")  # listen() needs one subscription
            gevent.spawn(_listen, _pubsub[0])
        if channel not in _ready:
            _ready[channel] = Event()
            _pubsub[0].subscribe(channel)  # a write; the listener greenlet reads the reply
        return _ready[channel]


@app.get("/stream")
def stream() -> Response:
    """Stream the events of `?channel=` (default `sse`)."""
    channel = request.args.get("channel") or "sse"
    if not _subscribed(channel).wait(5):
        return Response("subscription not confirmed\n", status=503)
    queue = Queue()
    _queues[channel].add(queue)

    def body() -> Iterator[str]:
        try:
            yield "retry: 3000\n\n"
            while True:
                yield queue.get()
        finally:
            _queues[channel].discard(queue)

    return Response(body(), mimetype="text/event-stream")


@app.get("/healthz")
def healthz() -> dict[str, Any]:
    """Report whether gevent patched the socket module in this worker."""
    from gevent import monkey

    return {"ok": True, "socket_patched": monkey.is_module_patched("socket")}
