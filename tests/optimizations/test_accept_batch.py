"""A gevent worker of gunicorn accepts a few connections per wake-up, not one."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from typing import Any

import gevent  # type: ignore[import-untyped]  # no stubs
import gevent.socket  # type: ignore[import-untyped]
import pytest
from flask import Flask
from gunicorn.config import Config
from gunicorn.workers import ggevent
from gunicorn.workers.base import Worker
from gunicorn.workers.sync import SyncWorker

from backend.optimizations.accept_batch import ACCEPT_BATCH, BatchAcceptingServer, install_in


@pytest.fixture(autouse=True)
def gunicorns_server_class() -> Iterator[None]:
    """Put back the class gunicorn's gevent worker builds its servers from."""
    built_from = ggevent.StreamServer
    yield
    ggevent.StreamServer = built_from


def worker_of(worker_class: type[Worker], app: object) -> Worker:
    """A gunicorn worker, not started, that loaded `app` (as `load_wsgi` leaves it)."""
    worker = worker_class(1, os.getpid(), [], None, 30, Config(), None)
    worker.wsgi = app
    return worker


def test_a_gevent_worker_with_the_layer_on_builds_batching_servers(
    make_app: Callable[..., Flask],
) -> None:
    assert install_in(worker_of(ggevent.GeventWorker, make_app(OPTIMIZATIONS=True)))
    assert ggevent.StreamServer is BatchAcceptingServer


@pytest.mark.parametrize(
    ("worker_class", "optimizations"),
    [(ggevent.GeventWorker, False), (SyncWorker, True)],
)
def test_nothing_changes_with_the_layer_off_or_another_worker(
    make_app: Callable[..., Flask], worker_class: type[Worker], optimizations: bool
) -> None:
    built_from = ggevent.StreamServer
    assert not install_in(worker_of(worker_class, make_app(OPTIMIZATIONS=optimizations)))
    assert ggevent.StreamServer is built_from


def test_nothing_changes_for_the_stand_in_app_of_a_failed_load() -> None:
    built_from = ggevent.StreamServer
    assert not install_in(worker_of(ggevent.GeventWorker, object()))
    assert ggevent.StreamServer is built_from


def test_one_wake_up_accepts_a_batch_where_gunicorn_asked_for_one() -> None:
    listener = gevent.socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    clients = [socket.create_connection(listener.getsockname()) for _ in range(ACCEPT_BATCH + 3)]
    handled: list[Any] = []
    server = BatchAcceptingServer(listener, handle=lambda conn, _addr: handled.append(conn))
    server.max_accept = 1  # what gunicorn's gevent worker sets when it has siblings
    server.start()
    try:
        assert server.max_accept == ACCEPT_BATCH
        server.stop_accepting()  # the wake-ups are this test's, one at a time
        server._do_read()  # one wake-up of the listening socket  # noqa: SLF001
        gevent.sleep(0.05)  # the handlers run
        assert len(handled) == ACCEPT_BATCH
        server._do_read()  # noqa: SLF001
        gevent.sleep(0.05)
        assert len(handled) == ACCEPT_BATCH + 3
    finally:
        server.stop()
        for client in clients:
            client.close()
