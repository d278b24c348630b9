"""The real processes: the Procfile in production mode, and the dev command.

These start gunicorn, RQ workers and cron as a user would and drive them over
HTTP only. They take a few seconds each, so they are marked slow.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from flask import Flask
from rq.job import JobStatus

from backend.config import PROJECT_ROOT
from backend.queues import enqueue
from jobs import maintenance
from tests.support.processes import (
    BIN,
    Process,
    coverage_environment,
    free_port,
    procfile,
    procfile_environment,
    wait_for_job,
    wait_until_up,
)

pytestmark = pytest.mark.slow


def test_procfile_runs_in_production_mode(
    app: Flask, database_url: str, redis_url: str, processes: Callable[..., Process]
) -> None:
    port = free_port()
    env = procfile_environment(database_url, redis_url, port)
    commands = procfile()
    assert set(commands) == {"release", "web", "worker", "cron"}
    release = subprocess.run(
        ["bash", "-c", commands["release"]], env=env, cwd=PROJECT_ROOT,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert release.returncode == 0, release.stderr
    assert "database is up to date" in release.stdout
    web = processes(["bash", "-c", f"exec {commands['web']}"], env)
    worker = processes(["bash", "-c", f"exec {commands['worker']}"], env)
    cron = processes(["bash", "-c", f"exec {commands['cron']}"], env)
    base = f"http://127.0.0.1:{port}"
    assert wait_until_up(f"{base}/healthz").status_code == 200
    ready = httpx.get(f"{base}/readyz", timeout=5)
    assert ready.json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}
    # The optimisation layer is on in production: repeated reads are cached, then replayed.
    reads = [httpx.get(f"{base}/api/v1/products", timeout=5) for _ in range(4)]
    assert [(r.status_code, r.json()) for r in reads] == [(200, [])] * 4
    assert len({r.headers["X-Request-ID"] for r in reads}) == 4
    missing = httpx.get(f"{base}/api/v1/none", timeout=5)
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
    job = enqueue(maintenance.check_health)
    assert wait_for_job(job.get_status) == JobStatus.FINISHED
    cron.wait_for_line("Successfully registered")
    for _ in range(4):  # let both gunicorn workers serve a request
        httpx.get(f"{base}/healthz", timeout=5)
    metrics = httpx.get(f"{base}/metrics", timeout=5).text
    assert 'http_requests_total{endpoint="/healthz",method="GET",status="200"}' in metrics
    assert 'rq_queue_jobs{queue="default"}' in metrics
    assert web.stop() == 0
    assert worker.stop() in (0, -signal.SIGTERM)
    assert cron.stop() in (0, -signal.SIGTERM)


def test_production_refuses_default_secrets_at_start(database_url: str) -> None:
    env = {**coverage_environment(), "PATH": os.environ["PATH"], "ENV": "production",
           "DATABASE_URL": database_url}  # fmt: skip
    result = subprocess.run(
        [str(BIN / "flask"), "--app", "wsgi", "db", "upgrade"], env=env, cwd=PROJECT_ROOT,
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "SECRET_KEY is a default value" in result.stderr
    assert "REDIS_URL is not set" in result.stderr


def redis_server_pids(folder: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if folder in cmdline and "redis-server" in cmdline:
                pids.append(int(proc.name))
    return pids


def test_dev_command_runs_everything_on_embedded_redis_and_stops_cleanly(
    tmp_path: Path, make_app: Callable[..., Flask], processes: Callable[..., Process]
) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL", "ENV")}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path}/dev.db"
    dev = processes(
        [str(BIN / "flask"), "--app", "wsgi", "dev", "--port", str(port)], env, background=True
    )
    dev.wait_for_line("migrations applied: 0001_initial")
    docs_line = dev.wait_for_line("API docs:")
    assert f"http://127.0.0.1:{port}/api/v1/docs" in docs_line
    redis_url = dev.wait_for_line("Redis: unix://").split()[1]
    folder = str(Path(redis_url.removeprefix("unix://")).parent)
    assert redis_server_pids(folder)
    base = f"http://127.0.0.1:{port}"
    assert wait_until_up(f"{base}/readyz").json()["checks"] == {"database": "ok", "redis": "ok"}
    assert httpx.get(f"{base}/api/v1/docs", timeout=5).status_code == 200
    with make_app(REDIS_URL=redis_url, DATABASE_URL=env["DATABASE_URL"]).app_context():
        job = enqueue(maintenance.check_health)
        assert wait_for_job(job.get_status) == JobStatus.FINISHED
    assert dev.stop(signal.SIGINT) == 0
    deadline = time.monotonic() + 10
    while redis_server_pids(folder) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not redis_server_pids(folder)
    assert not Path(folder).exists()
