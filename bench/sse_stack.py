"""SSE-specific server side of `bench/sse.py`: Redis client counts, gunicorn log problems, machine.

The shared plumbing (processes, gunicorn, /proc readings) is in `bench/stack.py`.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import redis

from bench.stack import Server

PROBLEM = re.compile(
    r"too many open files|emfile|traceback|exception|error|worker timeout|greenlet|"
    r"\"level\": \"(warning|critical)\"|killed|out of memory",
    re.IGNORECASE,
)
BOOT = re.compile(r"Booting worker")


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


def problems(server: Server) -> list[str]:
    """Return the log's suspicious lines, grouped (`count x line`), and worker boots."""
    text = server.log_path.read_text(errors="replace") if server.log_path.exists() else ""
    lines = text.splitlines()
    grouped = Counter(re.sub(r"\d+", "N", line)[:220] for line in lines if PROBLEM.search(line))
    found = [f"{count} x {line}" for line, count in grouped.most_common(8)]
    boots = sum(1 for line in lines if BOOT.search(line))
    found.append(f"workers booted: {boots} (more than the worker count means restarts)")
    found.append(f"stopped {server.stop_seconds:.1f} s after SIGTERM")
    return found


def machine() -> str:
    """Describe the machine: CPUs, memory, kernel, open-file limit, the kernel's queue caps."""
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
        f"open files {soft}/{hard}, accept queue cap (somaxconn) {_sysctl('net/core/somaxconn')}, "
        f"SYN queue {_sysctl('net/ipv4/tcp_max_syn_backlog')}"
    )


def _sysctl(name: str) -> str:
    """A kernel setting as /proc/sys shows it (`?` where it cannot be read)."""
    try:
        return Path("/proc/sys", name).read_text().strip()
    except OSError:
        return "?"
