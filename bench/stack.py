"""Stack plumbing shared by the benchmarks: deadline, Procfile, Redis, gunicorn, /proc readings.

Import it as `bench.stack`: each script puts the project root first on `sys.path` (and drops
`bench/`, where `jobs` would be `bench/jobs.py`). Every child is started in its own session with
a parent-death signal, so that a killed benchmark leaves no server behind, and is stopped with
its whole process tree: RQ work horses call `setpgrp`, so they are found through /proc parent
links, not only through the process group.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
BASH = shutil.which("bash") or "/bin/bash"
HOST = "127.0.0.1"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PR_SET_PDEATHSIG = 1
APP_CONFIG = ("ENV", "SECRET_KEY", "JWT_SECRET_KEY", "DATABASE_URL", "REDIS_URL")


class Deadline:
    """The benchmark's overall time limit.

    Args:
        seconds: Time allowed from now.
    """

    def __init__(self, seconds: float) -> None:
        self.ends = time.monotonic() + seconds

    def remaining(self) -> float:
        """Return the seconds left.

        Raises:
            TimeoutError: The limit has passed.
        """
        left = self.ends - time.monotonic()
        if left <= 0:
            raise TimeoutError("the benchmark ran past --timeout")
        return left

    def sleep(self, seconds: float) -> None:
        """Sleep `seconds`, or raise `TimeoutError` if that would pass the limit."""
        time.sleep(min(seconds, self.remaining()))


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Ask the kernel to send `sig` to this process when its parent dies (Linux only)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, sig)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def procfile() -> dict[str, str]:
    """Return the Procfile's commands by process name."""
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip() and not line.startswith("#"))


def run(command: str, env: dict[str, str], deadline: Deadline, timeout: float = 120.0) -> None:
    """Run a shell command line from the project root.

    Args:
        command: A fixed command line (this package's or the Procfile's).
        env: Its environment.
        deadline: The overall limit; the command gets at most what is left of it.
        timeout: Its own limit in seconds.

    Raises:
        RuntimeError: It failed (the message holds its output).
    """
    result = subprocess.run(  # noqa: S603 - fixed command lines from the bench and the Procfile
        [BASH, "-c", command], env=env, cwd=ROOT, capture_output=True, text=True,
        timeout=min(timeout, deadline.remaining()), check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"{command!r} failed:\n{result.stdout}{result.stderr}")


def prepare_database(env: dict[str, str], email: str, password: str, deadline: Deadline) -> None:
    """Migrate the database (the Procfile's `release`) and create an admin."""
    run(procfile()["release"], env, deadline)
    run(f"flask --app wsgi create-admin --email {email} --password={password}", env, deadline)


def expect(response: httpx.Response, status: int) -> httpx.Response:
    """Return `response`, or raise `RuntimeError` if its status is not `status`."""
    if response.status_code != status:
        raise RuntimeError(f"{response.request.url}: {response.status_code} {response.text[:300]}")
    return response


@contextlib.contextmanager
def scratch(prefix: str, keep: bool = False) -> Iterator[tuple[Path, str]]:
    """Yield a fresh temporary folder and the `DATABASE_URL` to use.

    Args:
        prefix: The folder name's prefix.
        keep: Leave the folder (logs) behind instead of removing it on exit.

    Yields:
        The folder, and the environment's `DATABASE_URL` or else a SQLite file in the folder.
    """
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield tmp, os.environ.get("DATABASE_URL") or f"sqlite:///{tmp}/bench.db"
    finally:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)


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


def production_env(
    database_url: str, redis_url: str, metrics_dir: Path, rate_limit: str = "100000/minute"
) -> dict[str, str]:
    """Return the environment an operator sets for the Procfile, production mode, loopback.

    Inherits this process's environment (minus `ENV` and `PORT`), with fresh secrets and the
    venv's `bin` first on `PATH`. `PORT` is left to the caller.

    Args:
        database_url: `DATABASE_URL`.
        redis_url: `REDIS_URL`.
        metrics_dir: `PROMETHEUS_MULTIPROC_DIR`, created now (leaves `var/` alone).
        rate_limit: The login and write rate limits, generous so they do not skew the figures.
    """
    metrics_dir.mkdir(parents=True, exist_ok=True)  # flask commands write there too
    return {
        **{k: v for k, v in os.environ.items() if k not in ("ENV", "PORT")},
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
        "ENV": "production",
        "SECRET_KEY": secrets.token_urlsafe(36),  # 48 characters
        "JWT_SECRET_KEY": secrets.token_urlsafe(36),
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "HOST": HOST,
        "WEB_CONCURRENCY": "2",
        "RATELIMIT_LOGIN_PER_IP": rate_limit,
        "RATELIMIT_LOGIN_PER_EMAIL": rate_limit,
        "RATELIMIT_WRITES": rate_limit,
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }


# --- processes -----------------------------------------------------------------------------


def start(argv: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start `argv` from the project root in a new session, dying with this process.

    Args:
        argv: The command.
        env: Its environment.
        log_path: Where its stdout and stderr go (appended).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(  # noqa: S603 - fixed command lines (the bench, the Procfile)
            argv, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent,
        )  # fmt: skip


def stop(process: subprocess.Popen[bytes], grace: float = 30.0) -> float:
    """SIGTERM `process`, wait up to `grace` s, then SIGKILL its whole tree and process group.

    The tree is listed before the signal: a child whose parent died is re-parented and could
    no longer be found through /proc.

    Returns:
        The seconds the shutdown took.
    """
    started = time.monotonic()
    doomed = tree(process.pid) if process.poll() is None else []
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)  # the master stops its own children
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace)
    if process.poll() is None:
        doomed += descendants(process.pid)
    for pid in dict.fromkeys(doomed):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)  # stragglers, even if the master is gone
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)
    return time.monotonic() - started


def wait_until_up(
    url: str,
    process: subprocess.Popen[bytes],
    deadline: Deadline,
    log_path: Path | None = None,
    limit: float = 120.0,
) -> None:
    """Poll `url` until it answers 200.

    Raises:
        RuntimeError: `process` exited first (with its log's end), or `limit` s passed.
        TimeoutError: The overall deadline passed.
    """
    gives_up = time.monotonic() + limit
    while time.monotonic() < gives_up:
        if process.poll() is not None:
            log = log_path.read_text(errors="replace")[-3000:] if log_path else ""
            raise RuntimeError(f"the process serving {url} exited with {process.returncode}\n{log}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url, timeout=2, trust_env=False).status_code == 200:
                return
        deadline.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {limit:g} s")


@dataclass
class Server:
    """A running gunicorn: its master process, base URL and log file."""

    process: subprocess.Popen[bytes]
    base: str
    log_path: Path
    stop_seconds: float = 0.0  # from SIGTERM until the whole tree was gone

    def workers(self) -> list[int]:
        """Return the pids of the master's children (the workers)."""
        return children(self.process.pid)


@contextlib.contextmanager
def gunicorn(
    command: str,
    env: dict[str, str],
    log_path: Path,
    deadline: Deadline,
    ready_path: str = "/healthz",
    grace: float = 30.0,
) -> Iterator[Server]:
    """Start `command` (e.g. the Procfile's `web` line) and wait until `ready_path` answers 200.

    Args:
        command: The shell command line, run with `exec` as a Procfile runner would.
        env: Its environment, with `PORT`.
        log_path: Where its output goes.
        deadline: The overall limit.
        ready_path: The path polled until it answers 200.
        grace: Seconds between SIGTERM and SIGKILL on exit.

    Yields:
        The running server; on exit it is stopped (whole tree) and `stop_seconds` is set.
    """
    process = start([BASH, "-c", "exec " + command], env, log_path)
    server = Server(process, f"http://{HOST}:{env['PORT']}", log_path)
    try:
        wait_until_up(server.base + ready_path, process, deadline, log_path)
        yield server
    finally:
        server.stop_seconds = stop(process, grace)


class Processes:
    """The children a benchmark started, each logging to `<log_dir>/<name>.log`.

    Args:
        deadline: The overall limit.
        log_dir: Where the logs go.
    """

    def __init__(self, deadline: Deadline, log_dir: Path) -> None:
        self.deadline = deadline
        self.log_dir = log_dir
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        """Start `argv` (see `start`) and record it; output goes to `<name>.log`."""
        process = start(argv, env, self.log_dir / f"{name}.log")
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

        Raises:
            RuntimeError: It exited with an error (the message holds its log).
            TimeoutError: The deadline passed first.
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
        """Stop `process` and its whole tree (see `stop`) and forget it."""
        stop(process, grace)
        if process in self.started:
            self.started.remove(process)

    def stop_all(self) -> None:
        """Stop every child still recorded, newest first (short grace: this is the clean-up)."""
        for process in reversed(list(self.started)):
            self.stop(process, grace=5.0)


# --- /proc readings ------------------------------------------------------------------------


def _stat_fields(pid: int | str) -> list[str]:
    """Return the fields of /proc/<pid>/stat after the command name (state, ppid, pgrp...)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _parents() -> dict[int, int]:
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                parents[int(entry.name)] = int(_stat_fields(entry.name)[1])
    return parents


def children(parent: int) -> list[int]:
    """Return the pids whose parent is `parent`."""
    return sorted(pid for pid, ppid in _parents().items() if ppid == parent)


def descendants(pid: int) -> list[int]:
    """Return every live process below `pid`, wherever its process group is (breadth first)."""
    by_parent: dict[int, list[int]] = {}
    for child, ppid in _parents().items():
        by_parent.setdefault(ppid, []).append(child)
    found = [pid]
    for parent in found:  # grows while iterating
        found += by_parent.get(parent, [])
    return found[1:]


def tree(root: int) -> list[int]:
    """Return `root` and all its descendants."""
    return [root, *descendants(root)]


def process_group(pid: int) -> int | None:
    """Return the process group of `pid`, or None if it is gone."""
    try:
        return int(_stat_fields(pid)[2])
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


def rss_kb(pids: list[int]) -> int:
    """Return the summed VmRSS of `pids`, in KiB."""
    return sum(status_kib(pid, "VmRSS") or 0 for pid in pids)


def cpu_seconds(pids: list[int]) -> float:
    """Return the summed user + system CPU time of `pids`, in seconds."""
    ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = _stat_fields(pid)
            ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return ticks / CLOCK_TICKS


def machine_busy_seconds() -> float:
    """Return the CPU time all processes on the machine have used (/proc/stat), in seconds."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / CLOCK_TICKS  # minus idle and iowait


def outside_seconds() -> float:
    """Return the machine's busy CPU time minus that of this process and its descendants.

    Differences over a window show how much CPU other processes (not the benchmark) took.
    """
    return machine_busy_seconds() - cpu_seconds(tree(os.getpid()))


def open_fds(pid: int) -> int:
    """Return how many file descriptors `pid` has open (-1 if unreadable)."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


# --- output --------------------------------------------------------------------------------


def print_table(table: list[list[str]]) -> None:
    """Print rows of cells aligned: the first column left, the others right; a rule under row 0."""
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for i, cells in enumerate(table):
        pairs = enumerate(zip(cells, widths, strict=True))
        print("  ".join(c.rjust(w) if j else c.ljust(w) for j, (c, w) in pairs))
        if i == 0:
            print("  ".join("-" * w for w in widths))
