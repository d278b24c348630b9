"""`flask --app wsgi dev`: the whole system in one process tree, for development.

Applies migrations, starts the embedded Redis when no Redis is configured, then
runs gunicorn (one gevent worker), an RQ worker with the scheduler and the
RQ cron process, all sharing that Redis. Ctrl-C (or SIGTERM) stops them all
and the embedded Redis with them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from types import FrameType

import click

from backend.config import PROJECT_ROOT
from backend.embedded_redis import _die_with_parent
from backend.queues import QUEUE_NAMES

STOP_TIMEOUT = 20.0
RQ_SETTINGS = "jobs.rq_settings"  # RQ's settings module: the Redis connection, as the Procfile's


def dev_commands(host: str, port: int) -> dict[str, list[str]]:
    """Return the command line of each process the dev command supervises."""
    python = sys.executable
    return {
        "web": [python, "-m", "gunicorn", "-c", "python:backend.gunicorn_conf",
                "--bind", f"{host}:{port}", "--workers", "1", "wsgi:app"],
        "worker": [python, "-m", "rq.cli", "worker", "--with-scheduler", "-c", RQ_SETTINGS,
                   "-w", "jobs.worker.Worker", *QUEUE_NAMES],
        "cron": [python, "-m", "rq.cli", "cron", "-c", RQ_SETTINGS, "jobs/schedule.py"],
    }  # fmt: skip


class _Stop(Exception):
    pass


def _raise_stop(_signum: int, _frame: FrameType | None) -> None:
    raise _Stop


def _terminate(processes: dict[str, subprocess.Popen[bytes]]) -> None:
    for process in processes.values():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    for process in processes.values():
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:  # pragma: no cover - a child ignored SIGTERM
            process.kill()
            process.wait()


def supervise(
    commands: dict[str, list[str]],
    env: dict[str, str],
    on_started: Callable[[], None] = lambda: None,
) -> int:
    """Run `commands` until one exits or we are told to stop; return the exit code.

    Every child is stopped before this returns.
    """
    # Handle SIGINT explicitly too: a shell that starts us in the background
    # leaves SIGINT ignored, and Python would then never raise KeyboardInterrupt.
    previous = {sig: signal.signal(sig, _raise_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    processes: dict[str, subprocess.Popen[bytes]] = {}
    code = 0
    try:
        for name, command in commands.items():
            processes[name] = subprocess.Popen(  # noqa: S603 - our own fixed commands
                command, env=env, cwd=PROJECT_ROOT, preexec_fn=_die_with_parent
            )
        on_started()
        while all(p.poll() is None for p in processes.values()):
            time.sleep(0.2)
        name, process = next((n, p) for n, p in processes.items() if p.poll() is not None)
        click.echo(f"{name} exited with code {process.returncode}; stopping the rest", err=True)
        code = process.returncode or 1
    except _Stop:
        click.echo("stopping...", err=True)
    finally:
        for sig in previous:  # a second Ctrl-C must not cut the clean-up short
            signal.signal(sig, signal.SIG_IGN)
        _terminate(processes)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return code


def child_environment(redis_url: str | None) -> dict[str, str]:
    """Return the environment the dev processes share (`redis_url`: the embedded one, if any)."""
    env = dict(os.environ)
    if redis_url is not None:
        env["REDIS_URL"] = redis_url
    env.setdefault("ENV", "development")
    env["PYTHONUNBUFFERED"] = "1"
    return env
