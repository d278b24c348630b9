"""The storm scenarios of `bench/sse.py`: a reconnect storm, then latency while it is held.

storm: on a fresh gunicorn, `--storm` streams started at `--storm-rate` per second (paced: a
storm does not wait for earlier handshakes), held `--hold` s. A sampler thread reads every
second, while they open, each worker's open fds (≈ its streams) and its Redis connections
(clients named `<name>-<worker pid>`), so that Redis connections can be compared at 10 % and
100 % of the streams. loaded-latency: with the storm's streams still held on the same gunicorn,
`--subscribers` more streams (in flight mode, from the next source addresses) get `--rate`
events/s for `--duration` s.
"""

from __future__ import annotations

import argparse
import re
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from bench import sse_load, sse_stack, stack
from bench.sse_load import Fleet, Plan, http_get, merge
from bench.sse_report import Sample, StormResult, print_table, storm_rows, storm_targets
from bench.stack import HOST, cpu_seconds, open_fds, outside_seconds, rss_kb

Publish = Callable[[dict[str, Any]], None]
NAMED_PID = re.compile(r"-(\d+)$")


@dataclass
class Side:
    """One server under test and how to talk to it."""

    name: str
    command: str
    env: dict[str, str]
    idle_path: str
    latency_path: str
    grace: float  # seconds between SIGTERM and SIGKILL
    login: Callable[[str], str | None]  # base URL -> bearer token (None: no auth)
    publisher: Callable[[], AbstractContextManager[Publish]]


class Sampler:
    """Samples the workers' fds and Redis connections, on demand or every `period` s."""

    def __init__(self, monitor: redis.Redis, workers: list[int], period: float = 1.0) -> None:
        self.monitor = monitor
        self.workers = workers
        self.period = period
        self.base = [open_fds(pid) for pid in workers]
        self.taken: list[Sample] = []
        self._stop = threading.Event()

    def sample(self) -> Sample:
        """Take (and keep) one sample now."""
        fds = [open_fds(pid) for pid in self.workers]
        by_pid: dict[int, int] = dict.fromkeys(self.workers, 0)
        for client in self.monitor.client_list():
            named = NAMED_PID.search(client.get("name") or "")
            if named and int(named.group(1)) in by_pid:
                by_pid[int(named.group(1))] += 1
        total = int(self.monitor.info("clients")["connected_clients"])
        streams = sum(max(0, f - b) for f, b in zip(fds, self.base, strict=True))
        found = Sample(time.monotonic(), streams, fds, total, [by_pid[p] for p in self.workers])
        self.taken.append(found)
        return found

    @contextmanager
    def running(self) -> Iterator[None]:
        """Sample every `period` s in a thread while the block runs (the monitor is its own)."""
        self._stop.clear()
        thread = threading.Thread(target=self._loop, daemon=True)
        thread.start()
        try:
            yield
        finally:
            self._stop.set()
            thread.join(timeout=30)

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self.sample()
            except (redis.RedisError, OSError) as exc:
                print(f"sampler: {exc}", file=sys.stderr)


def effective_worker_connections(env: dict[str, str]) -> int:
    """Return `worker_connections` as the Procfile's gunicorn config computes it from `env`."""
    code = "from backend import gunicorn_conf as c; print(c.worker_connections)"
    found = subprocess.run(  # noqa: S603 - a fixed command line
        [sys.executable, "-c", code], env=env, cwd=stack.ROOT, capture_output=True, text=True,
        timeout=60, check=True,
    )  # fmt: skip
    return int(found.stdout.split()[-1])


def publish_for(
    publish: Publish, workers: list[int], args: argparse.Namespace
) -> tuple[int, float, float]:
    """Publish `--rate` events/s for `--duration` s, each with its send time.

    Returns:
        (events published, workers' CPU in cores, CPU of processes outside the bench in cores)
    """
    published = 0
    cpu, busy, started = cpu_seconds(workers), outside_seconds(), time.monotonic()
    while time.monotonic() - started < args.duration:
        publish({"sent_ns": time.time_ns(), "seq": published})
        published += 1
        time.sleep(max(0.0, started + published / args.rate - time.monotonic()))
    wall = time.monotonic() - started
    return published, (cpu_seconds(workers) - cpu) / wall, (outside_seconds() - busy) / wall


def storm_path(side: Side, args: argparse.Namespace) -> str:
    """Return the path the storm's streams open (ours: `--storm-topics` added, if any)."""
    if side.name == "ours" and args.storm_topics:
        return f"{side.idle_path}?topics={args.storm_topics}"
    return side.idle_path


def measure_storm(side: Side, count: int, args: argparse.Namespace, loaded: bool) -> StormResult:
    """Run the storm on a fresh gunicorn; then, if `loaded`, the latency under it."""
    out = StormResult(requested=count)
    log = Path(args.tmp) / f"{side.name}-storm.log"
    publishing = side.publisher() if loaded else nullcontext(None)
    with (
        stack.gunicorn(side.command, side.env, log, args.deadline, grace=side.grace) as server,
        sse_stack.redis_monitor(side.env["REDIS_URL"]) as monitor,
        publishing as publish,
    ):
        token = side.login(server.base)
        time.sleep(1.0)
        out.workers = workers = server.workers()
        out.rss_before_kb = rss_kb(workers)
        sampler = Sampler(monitor, workers)
        sampler.sample()
        port = int(side.env["PORT"])
        request = http_get(storm_path(side, args), HOST, port, token)

        def make(n: int, source_ip: str) -> Plan:
            return Plan(
                HOST, port, request, n, source_ip, connect_timeout=args.connect_timeout,
                max_failures=n, rate=args.storm_rate * n / count, max_pending=args.storm_pending,
            )  # fmt: skip

        group = Fleet(count, make)
        try:
            cpu, busy, started = cpu_seconds(workers), outside_seconds(), time.monotonic()
            with sampler.running():
                out.opened = merge(group.start())
            wall = time.monotonic() - started
            out.open_cpu_seconds = cpu_seconds(workers) - cpu
            out.open_cores = out.open_cpu_seconds / wall
            out.open_outside_cores = (outside_seconds() - busy) / wall
            cpu, started = cpu_seconds(workers), time.monotonic()
            args.deadline.sleep(args.hold)
            out.hold_cores = (cpu_seconds(workers) - cpu) / (time.monotonic() - started)
            out.held = merge(group.ask("status"))
            out.rss_held_kb = rss_kb(server.workers())
            sampler.sample()
            out.notes.append(
                f"Redis clients by name holding: {sse_stack.redis_clients_by_name(monitor)}"
            )
            if publish is not None:
                measure_loaded_latency(side, token, group.next_host, publish, args, out)
                out.held_after_latency = merge(group.ask("status")).open
            group.ask("close")
        finally:
            group.kill()
        out.samples = sampler.taken
    out.notes += [f"storm run, gunicorn log: {line}" for line in sse_stack.problems(server)]
    return out


def measure_loaded_latency(
    side: Side,
    token: str | None,
    first_host: int,
    publish: Publish,
    args: argparse.Namespace,
    out: StormResult,
) -> None:
    """Open `--subscribers` latency streams beside the held storm and publish to them."""
    port = int(side.env["PORT"])
    request = http_get(side.latency_path, HOST, port, token)

    def make(n: int, source_ip: str) -> Plan:
        return Plan(
            HOST, port, request, n, source_ip, in_flight=args.ramp,
            max_failures=max(25, n // 50), record=True,
        )  # fmt: skip

    group = Fleet(args.subscribers, make, first_host)
    try:
        out.subscribers = merge(group.start())
        time.sleep(1.0)
        out.published, out.publish_cores, out.publish_outside_cores = publish_for(
            publish, out.workers, args
        )
        time.sleep(2.0)  # stragglers
        out.latency = merge(group.ask("samples"))
        group.ask("close")
    finally:
        group.kill()


def storm_report(results: dict[str, StormResult], args: argparse.Namespace) -> None:
    """Print the storm table (ours | shared | ratio), the failures, notes and target lines."""
    loaded = "loaded-latency" in args.scenarios
    n = args.workers * args.effective_connections
    wanted = args.worker_connections or "as the config decides"
    print(
        f"storm config: gunicorn -k gevent -w {args.workers} --worker-connections "
        f"{args.effective_connections} (ours: Procfile web, ENV=production, WEB_CONCURRENCY="
        f"{args.workers}, WORKER_CONNECTIONS {wanted}; "
        f"shared: bench/sse_shared_baseline_app.py, same settings); ours' streams "
        f"`{results['ours'].requested:,} x GET /api/v1/events"
        f"{'?topics=' + args.storm_topics if args.storm_topics else ''}` (one Bearer token), "
        f"{args.storm_rate:,.0f} started/s over {-(-args.storm // sse_load.PER_PROCESS)} load "
        f"processes, pending cap {args.storm_pending or 'none'}, connect timeout "
        f"{args.connect_timeout:g} s, hold {args.hold:g} s"
        + (f"; loaded: {args.subscribers:,} subscribers on products, {args.rate:g} events/s "
           f"for {args.duration:g} s" if loaded else "")
        + (f"; WARNING: {n:,} connections < {args.storm:,} streams" if n < args.storm else "")
    )  # fmt: skip
    shared = results.get("shared")
    print_table(
        storm_rows(results["ours"], args.hold, loaded),
        storm_rows(shared, args.hold, loaded) if shared else None,
        "shared",
    )
    for name, result in results.items():
        for note in result.notes:
            print(f"[{name}] {note}")
        for reason, count in result.opened.failures.most_common():
            print(f"[{name}] storm failures: {count:,} x {reason}")
        for reason, count in result.subscribers.failures.most_common():
            print(f"[{name}] loaded-latency handshake failures: {count:,} x {reason}")
    for line in storm_targets(results["ours"], loaded):
        print(line)


def check_storm_limits(args: argparse.Namespace) -> None:
    """Warn when the storm cannot fit the workers' connections or the open-file limit."""
    per_worker = -(-args.storm // args.workers)
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if per_worker > hard - 100:
        print(f"WARNING: {per_worker:,} streams per worker > open-file limit {hard:,}: "
              f"use more --workers", file=sys.stderr)  # fmt: skip
    if per_worker > args.effective_connections:
        print(f"WARNING: {per_worker:,} streams per worker > worker_connections "
              f"{args.effective_connections:,}: pass --worker-connections",
              file=sys.stderr)  # fmt: skip
