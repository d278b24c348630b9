"""The front door for cached public reads: replay a whole HTTP response without Flask.

`@cached_response` (see `backend.api.response_cache`) marks the anonymous reads
it answers with a cacheable 200. This WSGI middleware, installed in front of the
app by the first such read, keeps what the *whole* app sent back for them (body,
status and every header, after all the after-request hooks) in the same local
cache, under the same namespace version. A later identical request is answered
straight from there, once the version read for it (after it arrived) matches:
the same bytes but its own `X-Request-ID`, the same access-log line and the same
Prometheus observation as the app would have made. Everything else goes through
the app, which fills the entry again after a write.

Only requests whose answer cannot depend on anything but the path and query are
replayed: `GET`, no `Authorization`, `Cookie`, `Origin` (CORS) or conditional
header (those take the app's own path, which handles 304s). The app's request
hooks must all be among `REPRODUCED_HOOKS` (what this replay reproduces or what
does nothing for such a read); if the app has any other, nothing is kept and
every request goes through the app.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import redis
from flask import Flask

from backend import cache, logs, metrics

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]

MARK = "backend.replay"  # environ key: (store, version, URL rule) set by `mark`
REPLAYED_STATUS = "200 OK"
# Request headers that make an answer depend on more than the path and query.
VARYING = ("HTTP_AUTHORIZATION", "HTTP_COOKIE", "HTTP_ORIGIN", "HTTP_IF_NONE_MATCH",
           "HTTP_IF_MATCH", "HTTP_IF_MODIFIED_SINCE", "HTTP_RANGE")  # fmt: skip
REPRODUCED_HOOKS = frozenset({
    "backend.logs._start_request",  # request id and access line: reproduced
    "backend.logs._finish_request",
    "backend.metrics._start_timer",  # request count and latency: reproduced
    "backend.metrics._observe",
    "backend.security_headers._add_headers",  # headers only: kept with the response
    "flask_limiter._extension.Limiter._check_request_limit",  # reads: filtered out at once
    "flask_limiter._extension.Limiter.__inject_headers",  # no limit checked, no header
    "flask_limiter._extension.Limiter.__release_context",
    "backend.db._close_connection",  # no connection was opened
    "backend.api.parsing.refuse_nul_in_url",  # what it refuses is never kept
    "flask_cors.extension.make_after_request_function.<locals>.cors_after_request",  # no Origin
})  # fmt: skip


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


def mark(environ: Environ, store: cache.LocalCache[Any], version: cache.Version, rule: str) -> None:
    """Tell the middleware that the app's answer to this request may be kept for replay."""
    if replay_key(environ) is not None:
        environ[MARK] = (store, version, rule)


def _qualname(hook: Any) -> str:
    function = getattr(hook, "func", hook)  # functools.partial
    function = getattr(function, "__func__", function)  # bound methods
    return f"{getattr(function, '__module__', '?')}.{getattr(function, '__qualname__', '?')}"


def unknown_hooks(app: Flask) -> set[str]:
    """Return the app's request hooks that a replay would not reproduce."""
    registries = (app.before_request_funcs, app.after_request_funcs,
                  app.teardown_request_funcs, app.url_value_preprocessors)  # fmt: skip
    hooks = [hook for registry in registries for funcs in registry.values() for hook in funcs]
    hooks += app.teardown_appcontext_funcs
    return {_qualname(hook) for hook in hooks} - REPRODUCED_HOOKS


class ReplayMiddleware:
    """Answers marked, unchanged public reads from the local cache (see the module doc).

    Args:
        app: The Flask app (its hooks are checked before anything is kept).
        wsgi_app: The WSGI callable it stands in front of.
    """

    def __init__(self, app: Flask, wsgi_app: WSGIApp) -> None:
        self.app = app
        self.wsgi_app = wsgi_app
        self._stores: dict[str, cache.LocalCache[Any]] = {}

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """Replay the request's answer if it is kept and current, else run the app."""
        key = replay_key(environ)
        if key is None:
            return self.wsgi_app(environ, start_response)
        replayed = self._replay(key, environ, start_response)
        if replayed is not None:
            return replayed
        return self._run_and_keep(key, environ, start_response)

    def _replay(
        self, key: str, environ: Environ, start_response: StartResponse
    ) -> list[bytes] | None:
        store = self._stores.get(key)
        if store is None:
            return None
        started = time.perf_counter()
        try:
            version = store.current()
        except redis.RedisError:
            return None  # the app copes (and logs) without Redis
        entry = store.get(key, version)
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
        if marked is None or not sent or sent[0] != REPLAYED_STATUS or unknown_hooks(self.app):
            return body
        store, version, rule = marked
        data = _read_all(body)
        entry = _entry(data, sent[1], rule)
        if entry is not None:
            if len(self._stores) >= cache.LOCAL_MAX_ENTRIES:
                self._stores.clear()  # bounded, like the entries themselves
            self._stores[key] = store
            store.put(key, entry, version)
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


_install_lock = threading.Lock()


def install(app: Flask) -> None:
    """Put the middleware in front of `app` (once; it serves from the next request on)."""
    with _install_lock:
        if not isinstance(app.wsgi_app, ReplayMiddleware):
            app.wsgi_app = ReplayMiddleware(app, app.wsgi_app)  # type: ignore[method-assign]


def replays(app: Flask) -> Iterator[str]:
    """Yield the keys the app's middleware holds entries for (for tests and debugging)."""
    middleware = app.wsgi_app
    if isinstance(middleware, ReplayMiddleware):
        yield from middleware._stores
