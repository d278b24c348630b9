"""Generated request ids: 32 hex digits, never the same twice, in any process."""

from __future__ import annotations

import multiprocessing
import re
import threading

from backend.logs import RequestIds, request_ids


def test_ids_are_32_hex_digits_and_differ() -> None:
    ids = RequestIds()
    drawn = [ids.next_id() for _ in range(1000)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", one) for one in drawn)
    assert len(set(drawn)) == 1000


def test_ids_drawn_from_many_threads_never_repeat() -> None:
    ids = RequestIds()
    drawn: list[str] = []

    def draw() -> None:
        drawn.extend(ids.next_id() for _ in range(2000))

    threads = [threading.Thread(target=draw) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(drawn)) == 8000


def _child_id(pipe: multiprocessing.connection.Connection) -> None:
    pipe.send(request_ids.next_id())


def test_a_forked_process_draws_its_own_prefix() -> None:
    """A gunicorn worker is forked from the master: its ids must not repeat the master's."""
    parent_id = request_ids.next_id()
    context = multiprocessing.get_context("fork")
    receiving, sending = context.Pipe(duplex=False)
    child = context.Process(target=_child_id, args=(sending,))
    child.start()
    child_id = receiving.recv()
    child.join(10)
    assert child_id[:16] != parent_id[:16]
    assert child_id[16:] == f"{0:016x}"  # its own count, from the start


def test_restart_draws_a_new_prefix() -> None:
    ids = RequestIds()
    before = ids.next_id()
    ids.restart()
    assert ids.next_id()[:16] != before[:16]
