"""Running the project's real processes in tests: output capture, ports, clean-up."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from rq.job import JobStatus

from backend.config import PROJECT_ROOT

BIN = Path(sys.executable).parent


def coverage_environment() -> dict[str, str]:
    """Variables that let coverage measure child processes (empty outside a coverage run)."""
    return {k: v for k, v in os.environ.items() if k.startswith("COVERAGE_")}


def ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def procfile() -> dict[str, str]:
    lines = (PROJECT_ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip() and not line.startswith("#"))


class Process:
    """A child process whose output is collected line by line."""

    def __init__(self, command: list[str], env: dict[str, str], *, background: bool) -> None:
        # background=True starts it as `cmd &` in a script would: SIGINT ignored.
        self.popen = subprocess.Popen(
            command, env=env, cwd=PROJECT_ROOT, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, start_new_session=True,
            preexec_fn=ignore_sigint if background else None,
        )  # fmt: skip
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.output.append(line)
            self.lines.put(line)

    def wait_for_line(self, needle: str, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.2)
            except queue.Empty:
                assert self.popen.poll() is None, "".join(self.output)
                continue
            if needle in line:
                return line
        raise AssertionError(f"no {needle!r} in output:\n{''.join(self.output)}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
        return self.popen.wait(timeout=timeout)


def descendants(pid: int) -> list[int]:
    """Every live process below `pid` (RQ's work horses run in their own process group)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def redis_servers_started_here() -> set[int]:
    """Pids of the live `redis-server` processes whose parent is this process."""
    me, found = os.getpid(), set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                name, rest = (entry / "stat").read_text().split(" (", 1)[1].rsplit(") ", 1)
            except (OSError, IndexError, ValueError):
                continue
            if name == "redis-server" and int(rest.split()[1]) == me:
                found.add(int(entry.name))
    return found


def kill_tree(pid: int) -> None:
    """SIGKILL a process and everything below it, wherever their process groups are."""
    for victim in [pid, *descendants(pid)]:
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)


@pytest.fixture
def processes() -> Iterator[Callable[..., Process]]:
    started: list[Process] = []

    def start(command: list[str], env: dict[str, str], *, background: bool = False) -> Process:
        process = Process(command, env, background=background)
        started.append(process)
        return process

    yield start
    for process in started:
        kill_tree(process.popen.pid)
        process.popen.wait()


def wait_until_up(url: str, timeout: float = 30) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def wait_for_job(job_status: Callable[[], JobStatus | None], timeout: float = 30) -> JobStatus:
    deadline = time.monotonic() + timeout
    status = job_status()
    while status not in (JobStatus.FINISHED, JobStatus.FAILED) and time.monotonic() < deadline:
        time.sleep(0.2)
        status = job_status()
    assert status is not None
    return status


def procfile_environment(database_url: str, redis_url: str, port: int) -> dict[str, str]:
    """The environment an operator sets for the Procfile (API.md), in production mode."""
    return {
        **coverage_environment(),
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "ENV": "production",
        "SECRET_KEY": "p" * 48,
        "JWT_SECRET_KEY": "q" * 48,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WEB_CONCURRENCY": "2",
    }
