"""Bearer event streams opened in front of Flask answer exactly as the app does.

Which path served a request is seen through Flask's `request_started` signal:
only a request Flask handles sends it.
"""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import gevent  # type: ignore[import-untyped]  # no stubs
import gevent.socket  # type: ignore[import-untyped]
import gunicorn.config
import gunicorn.http
import gunicorn.http.wsgi
import pytest
import structlog
from flask import Flask, request, request_started
from flask.testing import FlaskClient
from werkzeug.test import EnvironBuilder, TestResponse

from backend import logs
from backend.events import publish
from backend.models import User
from backend.optimizations.stream_open import StreamOpenMiddleware
from backend.services import sessions
from tests.support.accounts import Login, login, make_user
from tests.support.helpers import assert_error
from tests.support.log_capture import captured_logs
from tests.support.sse import Frame, frames

EVENTS = "/api/v1/events"


@pytest.fixture
def fast_app(make_app: Callable[..., Flask]) -> Iterator[Flask]:
    app = make_app(OPTIMIZATIONS=True, SSE_HEARTBEAT_SECONDS=1, SSE_RETRY_MS=500)
    with app.app_context():
        yield app


@pytest.fixture
def flask_requests(fast_app: Flask) -> Iterator[list[str]]:
    """The paths of the requests Flask itself handled."""
    seen: list[str] = []

    def note(_sender: Flask, **_extra: object) -> None:
        seen.append(request.full_path)

    request_started.connect(note, fast_app)
    yield seen
    request_started.disconnect(note, fast_app)


@pytest.fixture
def ada(fast_app: Flask) -> Login:
    make_user("ada@example.test")
    return login(fast_app.test_client(), "ada@example.test")


def opened(client: FlaskClient, who: Login, query: str = "", **headers: str) -> TestResponse:
    response = client.get(f"{EVENTS}{query}", headers={**who.headers, **headers}, buffered=False)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response


def without_request_id(response: TestResponse) -> list[tuple[str, str]]:
    return [(k, v) for k, v in response.headers.items() if k != logs.REQUEST_ID_HEADER]


def test_after_one_stream_through_flask_the_next_open_in_front_with_the_same_headers(
    fast_app: Flask, flask_requests: list[str], ada: Login
) -> None:
    client = fast_app.test_client()
    flask_requests.clear()
    through_flask = opened(client, ada, "?topics=products")
    in_front = opened(client, ada, "?topics=products")
    assert len(flask_requests) == 1  # the second never reached Flask
    assert without_request_id(in_front) == without_request_id(through_flask)
    assert in_front.headers[logs.REQUEST_ID_HEADER] != through_flask.headers[logs.REQUEST_ID_HEADER]
    stream = frames(in_front.response)
    assert next(stream).retry == 500
    publish("products", "product.updated", {"id": 1})
    assert next(stream).event == "product.updated"
    through_flask.close()
    in_front.close()


def test_the_stream_opened_in_front_resumes_from_last_event_id(
    fast_app: Flask, flask_requests: list[str], ada: Login
) -> None:
    client = fast_app.test_client()
    opened(client, ada).close()  # keeps the headers
    first = publish(f"user:{ada.user_id}", "note", {"n": 1})
    second = publish(f"user:{ada.user_id}", "note", {"n": 2})
    flask_requests.clear()
    response = opened(client, ada, **{"Last-Event-ID": f"user:{ada.user_id}={first}"})
    stream = frames(response.response)
    assert next(stream).retry == 500
    replayed: Frame = next(stream)
    assert (replayed.json, replayed.id) == ({"n": 2}, f"user:{ada.user_id}={second}")
    assert flask_requests == []
    response.close()


def test_it_writes_the_access_line_and_keeps_the_request_id(fast_app: Flask, ada: Login) -> None:
    client = fast_app.test_client()
    opened(client, ada).close()
    with captured_logs(fast_app) as lines:
        response = opened(client, ada, **{"X-Request-ID": "storm-1"})
        response.close()
    access = lines.access()
    assert [(a["path"], a["status"], a["request_id"]) for a in access] == [(EVENTS, 200, "storm-1")]
    assert response.headers[logs.REQUEST_ID_HEADER] == "storm-1"


def test_the_request_id_is_bound_only_while_the_stream_opens(fast_app: Flask, ada: Login) -> None:
    """The stream's greenlet outlives its logging: it must not keep the binding for hours."""
    opened(fast_app.test_client(), ada).close()  # keeps the headers
    environ = EnvironBuilder(
        path=EVENTS, headers=[*ada.headers.items(), ("X-Request-ID", "storm-2")]
    ).get_environ()
    structlog.contextvars.clear_contextvars()
    sent: list[tuple[str, str]] = []

    def start_response(_status: str, headers: list[tuple[str, str]], *_: object) -> Any:
        sent.extend(headers)
        return lambda _data: None

    with captured_logs(fast_app) as lines:
        body = fast_app.wsgi_app(environ, start_response)
    assert (logs.REQUEST_ID_HEADER, "storm-2") in sent
    assert [a["request_id"] for a in lines.access()] == ["storm-2"]
    assert structlog.contextvars.get_contextvars() == {}
    body.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("query", "headers"),
    [
        ("?ticket=abc", {}),  # tickets are Flask's
        ("?topics=products&topics=admin", {}),
        ("?last_event_id=x", {}),
        ("", {"Origin": "https://shop.example.test"}),  # CORS is Flask's
    ],
)
def test_what_it_cannot_vouch_for_goes_through_flask(
    fast_app: Flask,
    flask_requests: list[str],
    ada: Login,
    query: str,
    headers: dict[str, str],
) -> None:
    client = fast_app.test_client()
    opened(client, ada).close()
    flask_requests.clear()
    response = client.get(f"{EVENTS}{query}", headers={**ada.headers, **headers}, buffered=False)
    response.close()
    assert len(flask_requests) == 1


def test_a_request_with_a_cookie_goes_through_flask(
    fast_app: Flask, flask_requests: list[str], ada: Login
) -> None:
    client = fast_app.test_client()
    opened(client, ada).close()
    flask_requests.clear()
    client.set_cookie("a", "b")
    opened(client, ada).close()
    assert len(flask_requests) == 1


def test_refusals_are_the_main_paths(
    fast_app: Flask, flask_requests: list[str], ada: Login
) -> None:
    client = fast_app.test_client()
    opened(client, ada).close()
    flask_requests.clear()
    assert_error(client.get(f"{EVENTS}?topics=admin", headers=ada.headers), 403, "forbidden")
    assert_error(
        client.get(EVENTS, headers={"Authorization": "Bearer not-a-token"}), 401, "unauthorized"
    )
    sessions.revoke_all_for(User.get_by_id(ada.user_id), reason="test")
    assert_error(client.get(EVENTS, headers=ada.headers), 401, "token_revoked")
    assert len(flask_requests) == 3


def test_nothing_is_kept_when_the_hooks_changed(make_app: Callable[..., Flask]) -> None:
    app = make_app(OPTIMIZATIONS=True)
    app.after_request(lambda response: response)  # a hook the layer does not know
    middleware = app.wsgi_app.wsgi_app  # type: ignore[attr-defined]  # under the replay
    assert isinstance(middleware, StreamOpenMiddleware)
    with app.app_context():
        make_user("bob@example.test")
        bob = login(app.test_client(), "bob@example.test")
        for _ in range(2):
            app.test_client().get(EVENTS, headers=bob.headers, buffered=False).close()
    assert middleware.headers == []
    assert middleware.gave_up  # every stream goes straight to Flask, without waiting its turn


def stream_middleware(app: Flask) -> StreamOpenMiddleware:
    middleware = app.wsgi_app.wsgi_app  # type: ignore[attr-defined]  # under the replay
    assert isinstance(middleware, StreamOpenMiddleware)
    return middleware


def held_in_flask(middleware: StreamOpenMiddleware) -> threading.Event:
    """Make Flask's first request wait until the returned event is set (a slow first open)."""
    release = threading.Event()
    through_flask = middleware.wsgi_app
    calls = itertools.count()

    def slow(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if next(calls) == 0:
            release.wait(10)
        return through_flask(environ, start_response)

    middleware.wsgi_app = slow
    return release


def open_at_once(app: Flask, who: Login, count: int) -> tuple[list[threading.Thread], list[int]]:
    statuses: list[int] = []

    def open_one() -> None:
        response = app.test_client().get(EVENTS, headers=who.headers, buffered=False)
        statuses.append(response.status_code)
        response.close()

    threads = [threading.Thread(target=open_one) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads, statuses


def test_streams_arriving_before_the_headers_are_known_wait_for_the_first(
    fast_app: Flask, flask_requests: list[str], ada: Login
) -> None:
    """A storm reaching a new worker: one stream is opened through Flask, the rest in front."""
    release = held_in_flask(stream_middleware(fast_app))
    flask_requests.clear()
    threads, statuses = open_at_once(fast_app, ada, 5)
    time.sleep(0.3)  # all five have arrived: one in Flask, four waiting for it
    release.set()
    for thread in threads:
        thread.join(10)
    assert statuses == [200] * 5
    assert len(flask_requests) == 1


def test_a_stream_waits_for_the_first_only_so_long(
    fast_app: Flask, flask_requests: list[str], ada: Login, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("backend.optimizations.stream_open.LEARN_WAIT_SECONDS", 0.1)
    release = held_in_flask(stream_middleware(fast_app))
    flask_requests.clear()
    threads, statuses = open_at_once(fast_app, ada, 2)
    time.sleep(0.5)
    assert statuses == [200]  # the second stopped waiting, and Flask opened it
    release.set()
    for thread in threads:
        thread.join(10)
    assert statuses == [200, 200]
    assert len(flask_requests) == 2


def test_a_refusal_first_does_not_stop_the_next_stream_being_kept(
    fast_app: Flask, flask_requests: list[str], ada: Login
) -> None:
    client = fast_app.test_client()
    assert_error(client.get(f"{EVENTS}?topics=admin", headers=ada.headers), 403, "forbidden")
    middleware = stream_middleware(fast_app)
    assert (middleware.headers, middleware.gave_up) == ([], False)
    opened(client, ada).close()
    flask_requests.clear()
    opened(client, ada).close()
    assert flask_requests == []


def test_redis_trouble_goes_to_flask_which_answers_503(fast_app: Flask, ada: Login) -> None:
    client = fast_app.test_client()
    opened(client, ada).close()
    fast_app.extensions["redis"] = type(fast_app.extensions["redis"])(host="127.0.0.1", port=1)
    try:
        assert_error(client.get(EVENTS, headers=ada.headers), 503, "service_unavailable")
    finally:
        del fast_app.extensions["redis"]


def loopback(socket_class: type[socket.socket]) -> Iterator[tuple[socket.socket, socket.socket]]:
    """Both ends of a real loopback TCP connection: the one a `socket_class` accepted, the peer."""
    with socket_class() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        peer = socket.create_connection(listener.getsockname())
        server_side, _ = listener.accept()
        yield server_side, peer
        server_side.close()
        peer.close()


@pytest.fixture
def tcp_connection() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A gevent socket, as a gevent worker of gunicorn hands the app, and its client's end."""
    yield from loopback(gevent.socket.socket)


@pytest.fixture
def tcp_socket(tcp_connection: tuple[socket.socket, socket.socket]) -> socket.socket:
    """The server's end of `tcp_connection`."""
    return tcp_connection[0]


@pytest.fixture
def plain_socket() -> Iterator[socket.socket]:
    """A plain socket, as a sync or threaded worker hands the app."""
    for server_side, _ in loopback(socket.socket):
        yield server_side


def corked(sock: socket.socket) -> bool:
    return bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_CORK))


@pytest.mark.skipif(not hasattr(socket, "TCP_CORK"), reason="TCP_CORK is Linux's")
def test_under_gunicorn_the_opening_leaves_in_one_segment_and_the_environ_is_let_go(
    fast_app: Flask, ada: Login, tcp_socket: socket.socket
) -> None:
    opened(fast_app.test_client(), ada).close()  # keeps the headers
    environ = EnvironBuilder(path=EVENTS, headers=list(ada.headers.items())).get_environ()
    environ["gunicorn.socket"] = tcp_socket
    sent: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], *_: object) -> Any:
        sent.append(status)
        return sent.append

    body = fast_app.wsgi_app(environ, start_response)
    assert sent == ["200 OK"]
    assert corked(tcp_socket)  # while the server writes the headers and the opening
    chunks = iter(body)
    assert environ == {}  # gunicorn holds it for the stream's whole life
    assert next(chunks) == b"retry: 500\n\n"
    assert corked(tcp_socket)
    gevent.sleep(0)  # the worker's event loop runs once the stream waits
    assert not corked(tcp_socket)
    publish(f"user:{ada.user_id}", "note", {"n": 1})
    assert b"event: note" in next(chunks)
    body.close()  # type: ignore[attr-defined]


def test_a_socket_no_event_loop_serves_is_never_corked(
    fast_app: Flask, ada: Login, plain_socket: socket.socket
) -> None:
    opened(fast_app.test_client(), ada).close()  # keeps the headers
    environ = EnvironBuilder(path=EVENTS, headers=list(ada.headers.items())).get_environ()
    environ["gunicorn.socket"] = plain_socket  # a sync or threaded worker's: nothing would uncork
    body = fast_app.wsgi_app(environ, lambda *_: lambda _data: None)
    assert next(iter(body)) == b"retry: 500\n\n"
    assert not corked(plain_socket)
    body.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize("connection", [None, "close"])
def test_of_a_stream_gunicorn_serves_it_keeps_only_what_it_reads_again(
    fast_app: Flask,
    ada: Login,
    tcp_connection: tuple[socket.socket, socket.socket],
    connection: str | None,
) -> None:
    """gunicorn's own request and response objects, over a real socket, as its worker uses them."""
    opened(fast_app.test_client(), ada).close()  # keeps the headers
    server_side, client_side = tcp_connection
    asked = f"Connection: {connection}\r\n" if connection else ""
    client_side.sendall(
        f"GET {EVENTS} HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\n"
        f"Authorization: {ada.headers['Authorization']}\r\n{asked}\r\n".encode()
    )
    config = gunicorn.config.Config()
    server_request = next(gunicorn.http.get_parser(config, server_side, ("127.0.0.1", 1)))
    addresses = (("127.0.0.1", 1), ("127.0.0.1", 2))
    server_response, environ = gunicorn.http.wsgi.create(
        server_request, server_side, *addresses, config
    )
    body = fast_app.wsgi_app(environ, server_response.start_response)
    chunks = iter(body)
    # The request headers are let go of, but for the one read to decide keep-alive.
    assert server_request.headers == ([("CONNECTION", connection)] if connection else [])
    server_response.write(next(chunks))  # what the worker does: the headers, then the opening
    gevent.sleep(0)  # the stream waits: its event loop runs
    assert server_response.headers == []  # sent: let go of too
    assert server_response.should_close() is (connection == "close")
    assert b"retry: 500" in client_side.recv(65536)
    body.close()  # type: ignore[attr-defined]
