"""Peewee's connection state in a context variable: each thread and greenlet its own, as before."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gevent  # type: ignore[import-untyped]  # no stubs
import pytest
from flask import Flask
from peewee import Database

from backend import db as db_module
from backend.db import database_from_url, db
from backend.models import User
from backend.optimizations.connection_state import ContextConnectionState
from tests.support.accounts import make_user


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    """A SQLite database built with the state in a context variable."""
    built = database_from_url(
        f"sqlite:///{tmp_path / 'state.db'}", connection_state=ContextConnectionState
    )
    yield built
    built.close()


def in_thread(work: Callable[[], Any]) -> Any:
    """Run `work` in a new thread; return what it returned."""
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(work()))
    thread.start()
    thread.join(10)
    return result[0]


def has_state(database: Database) -> bool:
    """Whether the calling thread's context holds a state for `database`."""
    state = database._state  # type: ignore[attr-defined]
    return state._current in contextvars.copy_context()


def test_asking_whether_closed_makes_no_state(database: Database) -> None:
    assert in_thread(lambda: (database.is_closed(), has_state(database))) == (True, False)
    assert in_thread(lambda: (database.connection() is not None, has_state(database))) == (
        True,
        True,
    )


def test_each_thread_has_its_own_connection(database: Database) -> None:
    mine = database.connection()

    def other() -> tuple[Any, bool]:
        theirs = database.connection()
        database.close()
        return theirs, database.is_closed()

    theirs, closed_there = in_thread(other)
    assert theirs is not mine
    assert closed_there
    assert not database.is_closed()  # closing theirs left mine open
    assert database.execute_sql("SELECT 1").fetchone() == (1,)


def test_each_greenlet_has_its_own_connection(database: Database) -> None:
    def connection_of_greenlet() -> Any:
        connection = database.connection()
        gevent.sleep(0)  # the other greenlet runs in between
        assert database.connection() is connection
        return connection

    first, second = gevent.spawn(connection_of_greenlet), gevent.spawn(connection_of_greenlet)
    gevent.joinall([first, second], timeout=10, raise_error=True)
    assert first.value is not second.value
    assert database.is_closed()  # this greenlet never connected


def test_a_context_copied_into_another_thread_does_not_share_the_connection(
    database: Database,
) -> None:
    mine = database.connection()
    copied = contextvars.copy_context()
    theirs = in_thread(lambda: copied.run(lambda: (database.is_closed(), database.connection())))
    assert theirs[0] is True
    assert theirs[1] is not mine


def rolled_back_signup() -> None:
    with db.atomic():
        make_user("rolled-back@example.test")
        raise RuntimeError


def test_transactions_roll_back_and_commit_callbacks_run(make_app: Callable[..., Flask]) -> None:
    app = make_app(OPTIMIZATIONS=True)
    assert isinstance(db.obj._state, ContextConnectionState)
    committed: list[str] = []
    with app.app_context():
        with pytest.raises(RuntimeError):
            rolled_back_signup()
        assert not User.select().where(User.email == "rolled-back@example.test").exists()
        with db.atomic():
            make_user("kept@example.test")
            db.after_commit(lambda: committed.append("done"))
        assert User.select().where(User.email == "kept@example.test").exists()
    assert committed == ["done"]
    assert db.is_closed()  # the app context's teardown returned it


def test_a_forked_process_rebuilds_its_database_with_the_same_state(
    make_app: Callable[..., Flask],
) -> None:
    make_app(OPTIMIZATIONS=True)
    rebuilt = db_module._rebuild[0]()  # what `rebind_in_child` builds after a fork
    assert isinstance(rebuilt._state, ContextConnectionState)  # type: ignore[attr-defined]


def test_with_the_layer_off_peewee_keeps_its_own(make_app: Callable[..., Flask]) -> None:
    make_app(OPTIMIZATIONS=False)
    assert not isinstance(db.obj._state, ContextConnectionState)
