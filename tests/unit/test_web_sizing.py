"""gunicorn's sizing follows the box unless the operator sets it."""

from __future__ import annotations

import resource
from pathlib import Path

import pytest

from backend import web_sizing
from backend.web_sizing import WebSizing, size_web


def test_defaults_follow_cpus_open_files_and_the_accept_queue() -> None:
    sizing = size_web({}, cpus=2, open_files=20000, queue_cap=4096)
    # 3 x 19,000 connections: 50,000 streams fit where 2 x 10,000 did not.
    assert sizing == WebSizing(workers=3, worker_connections=19000, backlog=4096)


def test_at_least_two_workers_and_a_hundred_connections() -> None:
    assert size_web({}, cpus=1, open_files=1024, queue_cap=128) == WebSizing(2, 100, 128)


def test_explicit_settings_win() -> None:
    env = {"WEB_CONCURRENCY": "5", "WORKER_CONNECTIONS": "700", "WEB_BACKLOG": "64"}
    assert size_web(env, cpus=2, open_files=20000, queue_cap=4096) == WebSizing(5, 700, 64)


def test_empty_settings_count_as_unset() -> None:
    env = {"WEB_CONCURRENCY": "", "WORKER_CONNECTIONS": ""}
    assert size_web(env, cpus=4, open_files=5000, queue_cap=1024) == WebSizing(5, 4000, 1024)


def test_the_open_file_limit_is_raised_to_the_hard_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        if hard != resource.RLIM_INFINITY:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 256), hard))
        raised = web_sizing.raise_open_file_limit()
        assert raised == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if hard != resource.RLIM_INFINITY:
            assert raised == hard
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_accept_queue_cap_reads_somaxconn_or_falls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cap = tmp_path / "somaxconn"
    cap.write_text("4096\n")
    monkeypatch.setattr(web_sizing, "SOMAXCONN", cap)
    assert web_sizing.accept_queue_cap() == 4096
    monkeypatch.setattr(web_sizing, "SOMAXCONN", tmp_path / "missing")
    assert web_sizing.accept_queue_cap() == web_sizing.DEFAULT_BACKLOG


def test_for_this_box_reads_the_environment() -> None:
    sizing = web_sizing.for_this_box({"WEB_CONCURRENCY": "4", "WORKER_CONNECTIONS": "900"})
    assert (sizing.workers, sizing.worker_connections) == (4, 900)
    assert sizing.backlog >= 1
