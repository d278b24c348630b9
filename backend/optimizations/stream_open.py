"""Event streams opened in front of Flask: what each stream of a reconnect storm pays.

Speeds up: `GET /api/v1/events` with a Bearer token, the way the SDK and the
Flet apps open streams; after a deploy every client does it at once. Measured
by the storm rows of `bench/sse.py` (README, "Optimisations"). Through Flask a
stream's setup pays a request context, every request hook, smorest's query
parsing and flask-jwt-extended's three PyJWT passes around the two Redis round
trips it needs.

What it does instead, for a request it can vouch for: the token verified once
per process (`authenticated.TokenVerifier`, the library's settings), the
session and the user's role checked in one Redis round trip on every open
(`realtime.listener`, the main path's own check: a revoked session is refused
on its very next open), and the very body the view returns
(`api.events.open_stream`). The status and headers are those the whole app
sent for the first stream it opened through Flask (every header after the
hooks; `X-Request-ID` put back per request), and the three things the hooks
do per request are done with the same functions: the request id, the access
line, the request metric (the contract of `replay`: the hooks are pinned at
startup, and if they changed nothing is kept and Flask opens every stream).
Until the headers are known, streams are opened through Flask one at a time,
the others waiting: a reconnect storm reaches a new worker all at once.

Whatever it cannot vouch for goes through Flask, so every refusal and every
error is the main path's: no or odd `Authorization`, a query other than
`topics=`, a ticket, an `Origin` or a cookie (CORS and cookies are Flask's), an
ended session, a topic the user may not read, Redis trouble. Costs: one kept
header list. Tests: `tests/optimizations/test_stream_open.py`.
"""

from __future__ import annotations

import contextlib
import re
import socket
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

import gevent  # type: ignore[import-untyped]  # no stubs
import gevent.socket  # type: ignore[import-untyped]
import redis
from flask import Flask

from backend import logs, metrics
from backend.api.events import open_stream
from backend.errors import DomainError
from backend.optimizations.authenticated import TokenVerifier
from backend.optimizations.replay import Environ, StartResponse, WSGIApp, request_hooks
from backend.services import realtime
from backend.streaming import StreamBody

STREAM_ENDPOINT = "events.stream"
OPENED_STATUS = "200 OK"
TOPICS_QUERY = re.compile(r"^(?:topics=([A-Za-z0-9:,_-]{0,200}))?$")
CORK: int | None = getattr(socket, "TCP_CORK", None)  # Linux: hold small writes until uncorked
KEEP = "CONNECTION"  # the request header gunicorn reads again once the response ends
# Request headers Flask must see: CORS, cookies, conditional requests.
FLASK_ONLY = ("HTTP_COOKIE", "HTTP_ORIGIN", "HTTP_IF_NONE_MATCH", "HTTP_IF_MODIFIED_SINCE")
LEARN_WAIT_SECONDS = 2.0  # how long a stream waits for another to learn the headers


class StreamOpenMiddleware:
    """Opens plain Bearer event streams without Flask (see the module doc).

    Args:
        app: The Flask app; its request hooks now are the ones this stands in for.
        tokens: The process's verifier of access tokens.
    """

    def __init__(self, app: Flask, tokens: TokenVerifier) -> None:
        self.app = app
        self.wsgi_app: WSGIApp = app.wsgi_app
        self.tokens = tokens
        self.hooks = request_hooks(app)
        rule = next(r for r in app.url_map.iter_rules() if r.endpoint == STREAM_ENDPOINT)
        self.rule = rule.rule
        self.headers: list[tuple[str, str]] = []  # what the app sent, minus the id; [] unknown
        self.request_id_at = 0
        self.learning = threading.Lock()  # held by the stream learning the headers through Flask
        self.gave_up = False  # the app's answer can never be reused: Flask opens every stream

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """Open the stream here when it can vouch for the request, else run the app."""
        topics = self._topics(environ)
        if topics is None or self.gave_up:
            return self.wsgi_app(environ, start_response)
        if not self.headers:
            learnt = self._learn(environ, start_response)
            if learnt is not None:
                return learnt
        started = time.perf_counter()
        body = self._open(environ, topics)
        if body is None:
            return self.wsgi_app(environ, start_response)
        with logs.request_bound(environ.get("HTTP_X_REQUEST_ID", "")) as request_id:
            headers = list(self.headers)
            headers.insert(self.request_id_at, (logs.REQUEST_ID_HEADER, request_id))
            start_response(OPENED_STATUS, headers)
            metrics.observe_request("GET", self.rule, 200, started)
            logs.log_request("GET", self.rule, 200, started)
        body.sent_through(environ, start_response)
        return body

    def _topics(self, environ: Environ) -> str | None:
        """The `?topics=` of a request this may open, else None."""
        eligible = (
            environ.get("REQUEST_METHOD") == "GET"
            and environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "") == self.rule
            and "HTTP_AUTHORIZATION" in environ
            and not any(name in environ for name in FLASK_ONLY)
        )
        found = TOPICS_QUERY.match(environ.get("QUERY_STRING", "")) if eligible else None
        return None if found is None else found.group(1) or ""

    def _open(self, environ: Environ, topics: str) -> _EncodedBody | None:
        claims = self.tokens.claims_of(environ["HTTP_AUTHORIZATION"])
        if claims is None:
            return None
        with self.app.app_context():
            try:
                listener = realtime.listener(
                    user_id=int(claims[self.tokens.identity_claim]), session_id=claims["sid"]
                )
                body = open_stream(
                    listener=listener,
                    topics=topics,
                    last_event_id=environ.get("HTTP_LAST_EVENT_ID"),
                )
            except (DomainError, redis.RedisError, ValueError):
                return None  # Flask answers it, in the main path's words
        return _EncodedBody(body)

    def _learn(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes] | None:
        """Open through Flask to learn the headers, one stream at a time; None: open in front.

        In a storm every stream of a new worker arrives before the first is
        open: the others wait for it (up to `LEARN_WAIT_SECONDS`, then Flask
        opens them) instead of all paying Flask's price.
        """
        if not self.learning.acquire(timeout=LEARN_WAIT_SECONDS):
            return self.wsgi_app(environ, start_response)
        try:
            if self.headers:
                return None  # learnt while this one waited
            return self._run_and_keep(environ, start_response)
        finally:
            self.learning.release()

    def _run_and_keep(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """Open through Flask and keep the status and headers it sent, if they may be reused.

        A refusal says nothing of the next stream's answer; an opened stream
        whose answer cannot be reused says the same of every stream's.
        """

        def keep(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
            names = [name.lower() for name, _ in headers]
            reusable = (
                names.count(logs.REQUEST_ID_HEADER.lower()) == 1
                and "set-cookie" not in names
                and request_hooks(self.app) == self.hooks
            )
            if status == OPENED_STATUS and reusable:
                self.request_id_at = names.index(logs.REQUEST_ID_HEADER.lower())
                self.headers = [h for i, h in enumerate(headers) if i != self.request_id_at]
            elif status == OPENED_STATUS:
                self.gave_up = True
            return start_response(status, headers, *args)

        return self.wsgi_app(environ, keep)


class _EncodedBody:
    """The stream body as bytes (what Flask's `Response` sends for text); closes with it.

    Under gunicorn's gevent worker the opening goes out in one segment: the
    socket is corked while gunicorn writes the headers and the opening (two
    sends, in one go), and uncorked by the event loop once the stream waits.

    What gunicorn keeps of the request for the stream's whole life is let go
    of: once the server iterates the body, the environ is emptied (nothing
    reads it after the stream is open; our config has gunicorn's own access
    log off) and the parsed request headers are cut to `Connection` (all
    gunicorn reads of them again: keep-alive, when the stream ends); once the
    opening is out, the response headers it sent.
    """

    __slots__ = ("body", "environ", "server")

    def __init__(self, body: StreamBody) -> None:
        self.body = body
        self.environ: Environ = {}
        self.server: ServerResponse | None = None  # gunicorn's response, when it serves

    def sent_through(self, environ: Environ, start_response: StartResponse) -> None:
        """Note the request: cork its socket (when it has one) until the opening is written."""
        self.environ = environ
        self.server = _server_response(start_response)
        sock = environ.get("gunicorn.socket")
        if CORK is not None and isinstance(sock, gevent.socket.socket):  # a gevent worker's
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, CORK, 1)
                # Runs once this greenlet yields: when the opening is written and the stream waits.
                gevent.get_hub().loop.run_callback(_opened, sock, self.server)

    def __iter__(self) -> Iterator[bytes]:
        """The chunks as bytes, encoded at the C level over the body's one generator."""
        self.environ.clear()
        self.environ = {}
        if self.server is not None:
            request = self.server.req
            request.headers = [(name, value) for name, value in request.headers if name == KEEP]
            self.server = None
        return map(str.encode, self.body)

    def close(self) -> None:
        self.body.close()


class ServerRequest(Protocol):
    """What this trims of gunicorn's request (`gunicorn.http.message.Request`)."""

    headers: list[tuple[str, str]]


class ServerResponse(Protocol):
    """What this reads and trims of gunicorn's response (`gunicorn.http.wsgi.Response`)."""

    req: ServerRequest
    headers: list[tuple[str, str]]
    headers_sent: bool


def _server_response(start_response: StartResponse) -> ServerResponse | None:
    """The response object of gunicorn behind `start_response` when it serves, else None."""
    wsgi = sys.modules.get("gunicorn.http.wsgi")  # loaded when gunicorn serves; never imported here
    server = getattr(start_response, "__self__", None)
    return server if wsgi is not None and isinstance(server, wsgi.Response) else None


def _opened(sock: socket.socket, server: ServerResponse | None) -> None:
    """The opening is written and the stream waits: uncork, let go of the headers sent."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, CORK or 0, 0)
    if server is not None and server.headers_sent:
        server.headers = []


def init_app(app: Flask, tokens: TokenVerifier) -> None:
    """Put the middleware in front of `app`, standing in for the request hooks it has now."""
    app.wsgi_app = StreamOpenMiddleware(app, tokens)  # type: ignore[method-assign]
