"""Process plumbing for `bench/jobs.py`: deadline, child processes, /proc readings, databases.

Every child is started in its own session with a parent-death signal and recorded, so that
`Processes.stop_all` can end it with its whole tree: RQ work horses call `setpgrp`, so they
are found through /proc parent links, not through the process group.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
BASH = shutil.which("bash") or "/bin/bash"
HOST = "127.0.0.1"
PR_SET_PDEATHSIG = 1


class Deadline:
    """The benchmark's overall time limit."""

    def __init__(self, seconds: float) -> None:
        self.ends = time.monotonic() + seconds

    def remaining(self) -> float:
        """Return the seconds left; raise `TimeoutError` once the limit has passed."""
        left = self.ends - time.monotonic()
        if left <= 0:
            raise TimeoutError("the benchmark ran past --timeout")
        return left

    def sleep(self, seconds: float) -> None:
        """Sleep `seconds`, or raise `TimeoutError` if that would pass the limit."""
        time.sleep(min(seconds, self.remaining()))


def _die_with_parent() -> None:  # runs in the forked child before exec
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def procfile() -> dict[str, str]:
    """Return the Procfile's commands by process name."""
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip() and not line.startswith("#"))


def children_by_parent() -> dict[int, list[int]]:
    """Map each live process id to the ids of its children, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    return children


def descendants(pid: int) -> list[int]:
    """Every live process below `pid`, wherever its process group is."""
    children = children_by_parent()
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def process_group(pid: int) -> int | None:
    """Return the process group of `pid`, or None if it is gone."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[2])
    except (OSError, IndexError, ValueError):
        return None


def status_kib(pid: int, field: str) -> int | None:
    """Return a `kB` field of /proc/<pid>/status (`VmHWM`, `VmRSS`), or None if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


class Processes:
    """The children this benchmark started, each logging to its own file."""

    def __init__(self, deadline: Deadline, log_dir: Path) -> None:
        self.deadline = deadline
        self.log_dir = log_dir
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        """Start `argv` from the project root in a new session; output goes to `<name>.log`."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with (self.log_dir / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(  # noqa: S603 - fixed command lines (this script, Procfile)
                argv, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent,
            )  # fmt: skip
        self.started.append(process)
        return process

    def start_procfile(self, name: str, line: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
        """Start the Procfile's `line` process (`web`, `worker`) as the Procfile runner would."""
        return self.start(name, [BASH, "-c", "exec " + procfile()[line]], env)

    def log(self, name: str) -> str:
        """Return the end of a child's log."""
        with contextlib.suppress(OSError):
            return (self.log_dir / f"{name}.log").read_text(errors="replace")[-3000:]
        return ""

    def wait(self, process: subprocess.Popen[bytes], name: str) -> float:
        """Wait for `process` to exit (within the deadline); return when it did (monotonic).

        Raises `RuntimeError` with its log if it exits with an error.
        """
        try:
            code = process.wait(timeout=self.deadline.remaining())
        except subprocess.TimeoutExpired as exc:
            raise TimeoutError(f"the benchmark ran past --timeout while {name} ran") from exc
        ended = time.monotonic()
        if code != 0:
            raise RuntimeError(f"{name} exited with {code}:\n{self.log(name)}")
        return ended

    def stop(self, process: subprocess.Popen[bytes], grace: float = 20.0) -> None:
        """SIGTERM the process, wait up to `grace` s, then SIGKILL the whole tree.

        The tree is listed before the signal: a child whose parent died is re-parented and
        could no longer be found through /proc.
        """
        tree = [process.pid, *descendants(process.pid)]
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # the master stops its own children
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=grace)
        for pid in [*tree, *descendants(process.pid)]:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        process.wait()
        if process in self.started:
            self.started.remove(process)

    def stop_all(self) -> None:
        """Stop every child still recorded, newest first (no grace: this is the clean-up)."""
        for process in reversed(list(self.started)):
            self.stop(process, grace=5.0)


def run(command: str, env: dict[str, str], deadline: Deadline) -> None:
    """Run a shell command line from the project root; raise with its output if it fails."""
    result = subprocess.run(  # noqa: S603 - fixed command lines from this script and the Procfile
        [BASH, "-c", command], env=env, cwd=ROOT, capture_output=True, text=True,
        timeout=min(180.0, deadline.remaining()), check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"{command!r} failed:\n{result.stdout}{result.stderr}")


def wait_until_up(url: str, process: subprocess.Popen[bytes], deadline: Deadline) -> None:
    """Poll `url` until it answers 200; raise if `process` exits first."""
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the process serving {url} exited with {process.returncode}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url, timeout=2, trust_env=False).status_code == 200:
                return
        deadline.sleep(0.2)


@contextlib.contextmanager
def embedded_redis_if_needed() -> Iterator[tuple[str, str]]:
    """Yield `REDIS_URL` and its description, starting (and stopping) the embedded server."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"], "machine Redis (REDIS_URL)"
        return
    from backend.embedded_redis import EmbeddedRedis

    server = EmbeddedRedis()
    try:
        yield server.start(), "embedded Redis (unix socket)"
    finally:
        server.stop()


@contextlib.contextmanager
def throwaway_postgres(admin_url: str) -> Iterator[str]:
    """Create `bench_jobs_<random>` on the server of `admin_url`, yield its URL, drop it after."""
    import psycopg2

    name = f"bench_jobs_{uuid.uuid4().hex[:10]}"

    def admin_sql(sql: str) -> None:
        connection = psycopg2.connect(admin_url)
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(sql)
        finally:
            connection.close()

    admin_sql(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(admin_url)._replace(path=f"/{name}"))
    finally:
        try:
            admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        except psycopg2.Error:  # before PostgreSQL 13: no FORCE
            admin_sql(f'DROP DATABASE IF EXISTS "{name}"')


def load_average() -> str:
    """Return the 1/5/15-minute load averages as text."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"
