"""Server side of `bench/sse.py`: Redis, gunicorn process groups, and readings from /proc.

Everything here starts processes in their own session with a parent-death signal, so that a
killed benchmark does not leave servers behind, and stops them (whole process group) on exit.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
BASH = shutil.which("bash") or "/bin/bash"
HOST = "127.0.0.1"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PR_SET_PDEATHSIG = 1
PROBLEM = re.compile(
    r"too many open files|emfile|traceback|exception|error|worker timeout|greenlet|"
    r"\"level\": \"(warning|critical)\"|killed|out of memory",
    re.IGNORECASE,
)
BOOT = re.compile(r"Booting worker")


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


def run(command: str, env: dict[str, str], timeout: float = 120.0) -> None:
    """Run a shell command line from the project root; raise with its output if it fails."""
    result = subprocess.run(  # noqa: S603 - fixed command lines from the Procfile and bench
        [BASH, "-c", command], env=env, cwd=ROOT, capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"{command!r} failed:\n{result.stdout}{result.stderr}")


@contextlib.contextmanager
def redis_server() -> Iterator[tuple[str, str]]:
    """Yield `REDIS_URL` and a description, starting (and stopping) the embedded server."""
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
def redis_monitor(url: str) -> Iterator[redis.Redis]:
    """Yield a client holding one connection, opened now (so it still works at maxclients)."""
    client = redis.Redis.from_url(url, socket_timeout=10, single_connection_client=True)
    try:
        client.ping()
        yield client
    finally:
        client.close()


def redis_info(client: redis.Redis) -> dict[str, str]:
    """Return the Redis server's version, maxclients and connected clients (incl. this one)."""
    clients = client.info("clients")
    return {
        "version": str(client.info("server")["redis_version"]),
        "maxclients": str(clients["maxclients"]),
        "connected": str(clients["connected_clients"]),
    }


def redis_clients_by_name(client: redis.Redis) -> dict[str, int]:
    """Count the Redis server's connections by client name (pids shown as N)."""
    names = (re.sub(r"\d+", "N", c.get("name") or "(unnamed)") for c in client.client_list())
    return dict(Counter(names).most_common())


@dataclass
class Server:
    """A running gunicorn: its master process, base URL and log file."""

    process: subprocess.Popen[bytes]
    base: str
    log_path: Path
    stop_seconds: float = 0.0  # from SIGTERM until the process group was gone

    def workers(self) -> list[int]:
        """Return the pids of the master's children (the workers)."""
        return children(self.process.pid)

    def problems(self) -> list[str]:
        """Return the log's suspicious lines, grouped (`count x line`), and worker boots."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        lines = text.splitlines()
        grouped = Counter(re.sub(r"\d+", "N", line)[:220] for line in lines if PROBLEM.search(line))
        found = [f"{count} x {line}" for line, count in grouped.most_common(8)]
        boots = sum(1 for line in lines if BOOT.search(line))
        found.append(f"workers booted: {boots} (more than the worker count means restarts)")
        found.append(f"stopped {self.stop_seconds:.1f} s after SIGTERM")
        return found


@contextlib.contextmanager
def gunicorn(
    command: str, env: dict[str, str], log_path: Path, ready_path: str, grace: float
) -> Iterator[Server]:
    """Start `command` in its own process group, wait until `ready_path` answers 200, yield it.

    On exit: SIGTERM to the master, then SIGKILL to the whole group after `grace` seconds.
    """
    base = f"http://{HOST}:{env['PORT']}"
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - the Procfile's or this bench's command line
            [BASH, "-c", "exec " + command], env=env, cwd=ROOT, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent,
        )  # fmt: skip
    server = Server(process, base, log_path)
    try:
        _wait_ready(server, ready_path)
        yield server
    finally:
        server.stop_seconds = stop(process, grace)


def _wait_ready(server: Server, ready_path: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"gunicorn exited:\n{server.log_path.read_text()[-3000:]}")
        with contextlib.suppress(httpx.TransportError):
            response = httpx.get(server.base + ready_path, timeout=2, trust_env=False)
            if response.status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError("gunicorn did not answer within 60 s")


def stop(process: subprocess.Popen[bytes], grace: float) -> float:
    """Stop a process started in its own session; return the seconds the shutdown took."""
    started = time.monotonic()
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)  # stragglers, even if the master is gone
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)
    return time.monotonic() - started


def _parents() -> dict[int, int]:
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
    return parents


def children(parent: int) -> list[int]:
    """Return the pids whose parent is `parent` (from /proc/*/stat)."""
    return sorted(pid for pid, ppid in _parents().items() if ppid == parent)


def tree(root: int) -> list[int]:
    """Return `root` and all its descendants."""
    parents = _parents()
    found = [root]
    for pid in found:  # grows while iterating: breadth first
        found += [child for child, ppid in parents.items() if ppid == pid]
    return found


def rss_kb(pids: list[int]) -> int:
    """Return the summed VmRSS of `pids`, in KiB."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def cpu_seconds(pids: list[int]) -> float:
    """Return the summed user + system CPU time of `pids`, in seconds."""
    ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
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


def machine() -> str:
    """Describe the machine: CPU model and count, memory, kernel, open-file limit."""
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kb = 0
    with contextlib.suppress(OSError, IndexError):
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return (
        f"{os.cpu_count()} x {model}, {mem_kb / 2**20:.1f} GiB RAM, Linux {os.uname().release}, "
        f"open files {soft}/{hard}"
    )
