"""Repeated anonymous catalog reads answered in front of Flask, with the bytes Flask sent.

Speeds up: plain anonymous `GET /products/{id}` and `GET /products?...`, the
reads a shop front makes most. Once `catalog_cache` holds a read, Flask still
builds a request context and runs every hook for it; this WSGI middleware
answers the next identical request from what the whole app sent (status, body,
every header after the after-request hooks), tagged with the same catalog
version. Measured with `bench/rest.py` (SQLite, x the bare-Flask ceiling of the
same run; README, "Optimisations"): with `catalog_cache` alone `GET
/api/v1/products/1` 0.38x and `GET /api/v1/products?page=1` 0.53x; with this
module too, 1.00x and 0.95x (Flask's request context and hooks cost more than
the rest of a cached read).

Costs: a second copy of each replayed response in the catalog cache, and the
contract below, which a new request hook must respect.

Why it is correct (the contract, tested in `tests/optimizations/test_catalog_cache.py`):

1. Only what `catalog_cache` marked is kept (`mark`): a `GET` answered for a
   public viewer, under the catalog version read after the request arrived;
   only a 200 carrying one `X-Request-ID`; only requests without any of
   `VARYING` (those go through Flask, which handles tokens, CORS and 304s).
   A replay is served only while a version read after *its* request arrived
   still matches, exactly like the catalog cache's own entries.
2. For such a read, the app's request hooks do three things per request: a
   request id (bound to the log context and sent back as `X-Request-ID`), one
   access-log line and one request metric. The replay does those three with
   the same functions (`logs.begin_request`, `logs.log_request`,
   `metrics.observe_request`). Whatever else the hooks do for such a read only
   adds headers, and those are kept with the response.
3. Point 2 is checked for the hooks `create_app` installed, which `init_app`
   records at startup (the layer is installed last); the tests pin them. If
   the app's hooks differ when a response would be kept (one was added before
   the first request; Flask refuses new ones after it), nothing is kept, so
   every request goes through Flask.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import redis
from flask import Flask

from backend import logs, metrics
from backend.optimizations.local_cache import LocalCache, Version

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]

MARK = "backend.optimizations.replay"  # environ key: (version, URL rule) set by `mark`
REPLAYED_STATUS = "200 OK"
# Request headers that make an answer depend on more than the path and query.
VARYING = ("HTTP_AUTHORIZATION", "HTTP_COOKIE", "HTTP_ORIGIN", "HTTP_IF_NONE_MATCH",
           "HTTP_IF_MATCH", "HTTP_IF_MODIFIED_SINCE", "HTTP_RANGE")  # fmt: skip


@dataclass(frozen=True)
class Replay:
    """What the whole app sent for one request (its `X-Request-ID` left out)."""

    body: bytes
    headers: list[tuple[str, str]]
    request_id_at: int  # where the X-Request-ID header goes back in
    endpoint: str  # the URL rule, as the request metrics label it


def replay_key(environ: Environ) -> str | None:
    """Return the cache key of a request that may be replayed, else None."""
    if environ.get("REQUEST_METHOD") != "GET" or any(name in environ for name in VARYING):
        return None
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    key = f"wsgi {path}?{environ.get('QUERY_STRING', '')}"
    return key if key.isascii() else None


def mark(environ: Environ, version: Version, rule: str) -> None:
    """Tell the middleware that the app's answer to this request may be kept for replay."""
    if replay_key(environ) is not None:
        environ[MARK] = (version, rule)


def request_hooks(app: Flask) -> tuple[Any, ...]:
    """Return every request hook of `app`, in registration order."""
    registries = (app.url_value_preprocessors, app.before_request_funcs,
                  app.after_request_funcs, app.teardown_request_funcs)  # fmt: skip
    hooks = [hook for registry in registries for funcs in registry.values() for hook in funcs]
    return (*hooks, *app.teardown_appcontext_funcs)


class ReplayMiddleware:
    """Answers marked, unchanged public reads from the catalog cache (see the module doc).

    Args:
        app: The Flask app; its request hooks now are the ones the replay stands in for.
        store: The catalog cache (replays are kept beside the views' responses).
    """

    def __init__(self, app: Flask, store: LocalCache[Any]) -> None:
        self.app = app
        self.wsgi_app: WSGIApp = app.wsgi_app
        self.store = store
        self.hooks = request_hooks(app)

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """Replay the request's answer if it is kept and current, else run the app."""
        key = replay_key(environ)
        if key is None:
            return self.wsgi_app(environ, start_response)
        started = time.perf_counter()
        replayed = self._replay(key, environ, start_response, started)
        if replayed is not None:
            return replayed
        return self._run_and_keep(key, environ, start_response)

    def _replay(
        self, key: str, environ: Environ, start_response: StartResponse, started: float
    ) -> list[bytes] | None:
        try:
            version = self.store.current()
        except redis.RedisError:
            return None  # the app copes (and logs) without Redis
        entry = self.store.get(key, version)
        if not isinstance(entry, Replay):
            return None
        request_id = logs.begin_request(environ.get("HTTP_X_REQUEST_ID", ""))
        headers = list(entry.headers)
        headers.insert(entry.request_id_at, (logs.REQUEST_ID_HEADER, request_id))
        start_response(REPLAYED_STATUS, headers)
        metrics.observe_request("GET", entry.endpoint, 200, started)
        logs.log_request("GET", "/" + environ.get("PATH_INFO", "").lstrip("/"), 200, started)
        return [entry.body]

    def _run_and_keep(
        self, key: str, environ: Environ, start_response: StartResponse
    ) -> Iterable[bytes]:
        sent: list[Any] = []

        def keep_start_response(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
            sent[:] = [status, headers]
            return start_response(status, headers, *args)

        body = self.wsgi_app(environ, keep_start_response)
        marked = environ.get(MARK)
        if (
            marked is None
            or not sent
            or sent[0] != REPLAYED_STATUS
            or request_hooks(self.app) != self.hooks
        ):
            return body
        version, rule = marked
        data = _read_all(body)
        entry = _entry(data, sent[1], rule)
        if entry is not None:
            self.store.put(key, entry, version)
        return [data]


def _read_all(body: Iterable[bytes]) -> bytes:
    try:
        return b"".join(body)
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()


def _entry(data: bytes, headers: list[tuple[str, str]], rule: str) -> Replay | None:
    names = [name.lower() for name, _ in headers]
    if names.count(logs.REQUEST_ID_HEADER.lower()) != 1:
        return None
    at = names.index(logs.REQUEST_ID_HEADER.lower())
    return Replay(data, [h for i, h in enumerate(headers) if i != at], at, rule)


def init_app(app: Flask, store: LocalCache[Any]) -> None:
    """Put the middleware in front of `app`, standing in for the request hooks it has now."""
    app.wsgi_app = ReplayMiddleware(app, store)  # type: ignore[method-assign]
