"""The embedded Redis: a real server that stops with its owner and leaves nothing behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import redis

from backend import embedded_redis
from backend.embedded_redis import FOLDER_PREFIX, EmbeddedRedis, remove_stale_folders


def test_starts_a_real_server_and_cleans_up_on_stop() -> None:
    server = EmbeddedRedis()
    url = server.start()
    folder = server.folder
    process = server.process
    assert folder is not None
    assert process is not None
    client = redis.Redis.from_url(url)
    assert client.ping()
    client.set("k", "v")
    assert client.get("k") == b"v"
    assert client.info("server")["redis_version"].startswith("6.")
    client.close()
    server.stop()
    assert process.poll() is not None
    assert not folder.exists()


def test_a_forked_child_never_stops_its_parents_server() -> None:
    server = EmbeddedRedis()
    server.start()
    try:
        server.owner_pid = -1  # as seen from another process
        server.stop()
        assert server.process is not None
        assert server.process.poll() is None
    finally:
        server.owner_pid = os.getpid()
        server.stop()


def test_unstarted_server_has_no_socket() -> None:
    with pytest.raises(RuntimeError, match="not started"):
        _ = EmbeddedRedis().url


def test_folders_of_dead_owners_are_removed(tmp_path: Path) -> None:
    dead = tmp_path / f"{FOLDER_PREFIX}999999999-abc"
    alive = tmp_path / f"{FOLDER_PREFIX}{os.getpid()}-abc"
    dead.mkdir()
    alive.mkdir()
    assert remove_stale_folders(tmp_path) == [dead]
    assert alive.exists()


def test_ensure_started_prefers_an_existing_redis_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://example.invalid:6379/0")
    assert embedded_redis.ensure_started() == "redis://example.invalid:6379/0"


def test_ensure_started_starts_one_server_per_process_and_exports_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original = os.environ.get("REDIS_URL")
    # Recorded as it was first, so the URL exported below does not outlive the test.
    monkeypatch.setenv("REDIS_URL", "")
    monkeypatch.delenv("REDIS_URL")
    monkeypatch.setattr(embedded_redis, "_process_server", None)
    monkeypatch.setattr(embedded_redis.atexit, "register", lambda _fn: None)
    url = embedded_redis.ensure_started()
    server = embedded_redis._process_server
    assert server is not None
    folder = server.folder
    try:
        assert os.environ["REDIS_URL"] == url
        monkeypatch.delenv("REDIS_URL")
        assert embedded_redis.ensure_started() == url
        assert redis.Redis.from_url(url).ping()
    finally:
        server.stop()
    assert folder is not None
    assert not folder.exists()
    monkeypatch.undo()
    assert os.environ.get("REDIS_URL") == original
