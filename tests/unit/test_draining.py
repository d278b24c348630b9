"""Draining: the flag gunicorn's SIGTERM sets, and the requests in flight it closes after."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gunicorn.config import Config
from gunicorn.http.message import Request
from gunicorn.http.parser import RequestParser

from backend import draining


@pytest.fixture(autouse=True)
def _serving() -> Iterator[None]:
    draining.reset()
    yield
    draining.reset()


def gunicorn_request(raw: bytes = b"GET /api/v1/products HTTP/1.1\r\nHost: x\r\n\r\n") -> Request:
    """A request as gunicorn's parser reads it off a keep-alive connection."""
    request = next(RequestParser(Config(), iter([raw]), ("127.0.0.1", 40000)))
    assert isinstance(request, Request)
    return request


def test_a_request_in_flight_closes_its_connection_once_draining_begins() -> None:
    request = gunicorn_request()
    draining.track(request)
    assert not request.should_close()  # HTTP/1.1: kept alive
    draining.begin()
    assert draining.active()
    assert request.should_close()  # gunicorn answers it with `Connection: close`


def test_a_finished_request_is_forgotten_and_left_alone() -> None:
    done, open_ = gunicorn_request(), gunicorn_request()
    draining.track(done)
    draining.track(open_)
    draining.untrack(done)
    assert draining.in_flight() == 1
    draining.begin()
    assert not done.should_close()
    assert open_.should_close()


def test_a_request_started_while_draining_closes_its_connection() -> None:
    draining.begin()
    request = gunicorn_request()
    draining.track(request)
    assert request.should_close()


def test_reset_serves_normally_again() -> None:
    draining.track(gunicorn_request())
    draining.begin()
    draining.reset()
    assert not draining.active()
    assert draining.in_flight() == 0
    request = gunicorn_request()
    draining.track(request)
    assert not request.should_close()
