"""Whether this web process is draining: shutting down gracefully, finishing what it holds.

gunicorn's SIGTERM handler (`backend/gunicorn_conf.py`) calls `begin()` in the
worker that got the signal; the worker then stops accepting and finishes its
requests for up to its graceful timeout. Meanwhile `/readyz` answers 503 so a
health-checking balancer takes the instance out, new event streams are refused
(503, `Retry-After`) so that they open on another instance, and every request
still in flight is answered with `Connection: close` so a proxy's keep-alive
connection moves on after it. The requests in flight are the ones gunicorn's
`pre_request`/`post_request` hooks hand to `track`/`untrack`: gunicorn sends
`Connection: close` for a request whose `must_close` is set before its
response starts (requests read after the signal get it from gunicorn itself).
"""

from __future__ import annotations

from typing import Protocol


class Closable(Protocol):
    """What draining needs of a request in flight (gunicorn's `Request` has it)."""

    must_close: bool


_state = {"draining": False}  # a plain flag: set from a signal handler, no lock
_in_flight: set[Closable] = set()


def track(request: Closable) -> None:
    """Note a request this process started serving (closed after it if draining)."""
    if _state["draining"]:
        request.must_close = True
    _in_flight.add(request)


def untrack(request: Closable) -> None:
    """Forget a request whose response is done."""
    _in_flight.discard(request)


def in_flight() -> int:
    """How many tracked requests are being served."""
    return len(_in_flight)


def begin() -> None:
    """Start draining: readiness fails, and each request in flight closes its connection.

    Safe to call from a signal handler (it takes no lock).
    """
    _state["draining"] = True
    for request in list(_in_flight):
        request.must_close = True


def active() -> bool:
    """Whether this process is draining."""
    return _state["draining"]


def reset() -> None:
    """Serve normally again (a process that is not going away after all, and tests)."""
    _state["draining"] = False
    _in_flight.clear()
