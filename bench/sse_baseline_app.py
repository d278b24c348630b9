"""The flask-sse 1.0 baseline: one Redis Pub/Sub connection per SSE client.

`bench/sse.py` runs it as `gunicorn -k gevent -w 2 --worker-connections 20000
bench.sse_baseline_app:app` with `REDIS_URL` set. The streaming code follows flask-sse 1.0
(`ServerSentEventsBlueprint.messages` / `.stream`): one `StrictRedis` client per process,
`pubsub()` + `subscribe(channel)` per request, `listen()`, each Redis message a JSON dict
(`data`, `type`, `id`, `retry`) re-serialised into SSE text. No auth, replay or heartbeats.

Two deviations, both so that the architecture is what gets measured:
- flask-sse sends nothing until the first event, so a client cannot tell that it is
  subscribed; this app yields `retry: 3000` right after `subscribe()`, which is what the
  benchmark's clients wait for (our backend sends the same line first);
- redis-py 8 caps a pool at 100 connections by default (`max_connections or 100`), so
  flask-sse as shipped fails every stream past ~100 per worker with `MaxConnectionsError`;
  the cap is lifted here (`POOL_CAP`), leaving Redis's own `maxclients` as the limit.

gunicorn's gevent worker monkey-patches the standard library before it imports this module,
so redis-py's sockets are cooperative; `/healthz` reports whether that is so.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import suppress
from typing import Any

import redis
from flask import Flask, Response, request, stream_with_context

POOL_CAP = 1_000_000
app = Flask(__name__)
_client: redis.StrictRedis | None = None


def client() -> redis.StrictRedis:
    """Return this process's Redis client (flask-sse caches one per blueprint)."""
    global _client
    if _client is None:
        _client = redis.StrictRedis.from_url(os.environ["REDIS_URL"], max_connections=POOL_CAP)
    return _client


def to_sse(message: dict[str, Any]) -> str:
    """Format a message the way `flask_sse.Message.__str__` does."""
    data = message["data"]
    text = data if isinstance(data, str) else json.dumps(data)
    lines = [f"data:{line}" for line in text.splitlines()]
    if message.get("type"):
        lines.insert(0, f"event:{message['type']}")
    if message.get("id"):
        lines.append(f"id:{message['id']}")
    if message.get("retry"):
        lines.append(f"retry:{message['retry']}")
    return "\n".join(lines) + "\n\n"


def messages(channel: str) -> Iterator[str]:
    """Subscribe on a connection of its own, then yield each message as SSE text."""
    pubsub = client().pubsub()
    pubsub.subscribe(channel)
    try:
        yield "retry: 3000\n\n"
        for item in pubsub.listen():
            if item["type"] == "message":
                yield to_sse(json.loads(item["data"]))
    finally:
        with suppress(redis.ConnectionError):
            pubsub.unsubscribe(channel)


@app.get("/stream")
def stream() -> Response:
    """Stream the events of `?channel=` (default `sse`)."""
    channel = request.args.get("channel") or "sse"
    body = stream_with_context(messages(channel))
    return Response(body, mimetype="text/event-stream")


@app.get("/healthz")
def healthz() -> dict[str, Any]:
    """Report whether gevent patched the socket module in this worker."""
    from gevent import monkey  # type: ignore[import-untyped]

    return {"ok": True, "socket_patched": monkey.is_module_patched("socket")}
