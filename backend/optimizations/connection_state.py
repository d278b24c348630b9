"""Peewee's per-thread connection state held in a context variable: asking costs nothing.

Speeds up: every request and every event stream opened, above all in a
gevent worker; measured by the storm rows of `bench/sse.py` (README,
"Optimisations"). Peewee keeps each thread's connection state in a
`threading.local` (under gevent, one per greenlet). Merely asking whether it
is closed, which the app's teardown does at the end of every request and app
context (`backend.db`), creates that thread's state: a dict with a connection,
a flag and three lists, ~450 bytes that an event stream's greenlet keeps for
the stream's whole life, and ~2.5% of a worker's time in a reconnect storm.

What it does instead: Peewee's own state is held in a `ContextVar`, made on
the first write (a connection opened, a transaction, a connection context);
until then a read answers "closed, no connection" and allocates nothing.

Why it is correct: every thread and every greenlet (greenlet 1.0 and later)
runs in a context of its own that starts empty, so each has its own state as
with `threading.local`, and Flask keeps its own contexts the same way. A
context copied into another thread (`contextvars.copy_context`) would share
the value, so the state records which thread or greenlet made it
(`threading.get_ident`, per greenlet once gevent patched it) and is ignored by
any other, which makes its own: Peewee's `playhouse.pwasyncio` guards its
per-task state the same way. Costs: one context entry per thread or greenlet
that used the database. Tests: `tests/optimizations/test_connection_state.py`.
"""

from __future__ import annotations

import threading
from contextvars import ContextVar
from typing import Any

from flask import Flask
from peewee import _ConnectionState

from backend.db import rebind_with


class _State(_ConnectionState):
    """One thread's (or greenlet's) connection: Peewee's own state, with who made it."""

    def __init__(self, owner: int) -> None:
        super().__init__()
        self.owner = owner


class ContextConnectionState:
    """Stands in for a Peewee database's `_state`: the calling thread's or greenlet's state."""

    __slots__ = ("_current",)

    def __init__(self) -> None:
        """Start with no state anywhere."""
        self._current: ContextVar[_State | None] = ContextVar(
            f"peewee_connection_state_{id(self)}", default=None
        )

    def _found(self) -> _State | None:
        state = self._current.get()
        return state if state is not None and state.owner == threading.get_ident() else None

    def _own(self) -> _State:
        state = self._found()
        if state is None:
            state = _State(threading.get_ident())
            self._current.set(state)
        return state

    @property
    def closed(self) -> bool:
        """Whether the caller has no open connection (true until it opens one)."""
        state = self._found()
        return True if state is None else state.closed

    @property
    def conn(self) -> Any:
        """The caller's connection, or None."""
        state = self._found()
        return None if state is None else state.conn

    @property
    def ctx(self) -> list[Any]:
        """The caller's open connection contexts (Peewee appends and pops)."""
        return self._own().ctx

    @property
    def transactions(self) -> list[Any]:
        """The caller's open transactions, innermost last."""
        return self._own().transactions

    @property
    def commit_callbacks(self) -> list[Any]:
        """What runs after the caller's outermost transaction commits."""
        return self._own().commit_callbacks

    def reset(self) -> None:
        """Forget the caller's connection (Peewee closed it or is about to connect)."""
        state = self._found()
        if state is not None:
            state.reset()

    def set_connection(self, conn: Any) -> None:
        """Make `conn` the caller's open connection."""
        self._own().set_connection(conn)


def init_app(app: Flask) -> None:
    """Rebind the database (as built so far) with its state in a context variable."""
    app.extensions["peewee"] = rebind_with(connection_state=ContextConnectionState)
