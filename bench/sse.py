"""SSE fan-out benchmark: our `GET /api/v1/events` beside a flask-sse-style baseline, one run.

Usage: `.venv/bin/python bench/sse.py [--connections N] [--baseline-connections N]
[--subscribers N] [--duration S] [--rate R] [--hold S] [--ramp K] [--skip-baseline]
[--timeout S] [--keep]` (run it as a script; its helpers are imported as `bench.*`).

Both servers run under gunicorn's gevent worker, 2 workers, 20000 connections each: ours is the
Procfile's `web` line in production mode; the baseline is `bench/sse_baseline_app.py` (one
Redis Pub/Sub connection per client, as flask-sse does). For each server, on a fresh gunicorn:

1. idle: open N streams from separate load processes (`bench/sse_load.py`), hold them, then
   read the workers' RSS and CPU from /proc and Redis `connected_clients`;
2. latency: `--subscribers` streams on `products`, `--rate` events/s for `--duration` s, each
   carrying its send time; receive − send percentiles and the workers' CPU.

Uses `DATABASE_URL` / `REDIS_URL` when set (nothing is dropped or flushed), else a temporary
SQLite file and the embedded Redis. Only loopback addresses are used. Every process started
is stopped on exit, Ctrl-C, SIGTERM or `--timeout`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench")]

from bench import sse_load, sse_stack, stack  # noqa: E402 - needs the sys.path fix above
from bench.sse_load import Plan, fleet, http_get, merge  # noqa: E402
from bench.sse_report import Result, report  # noqa: E402
from bench.sse_stack import redis_info  # noqa: E402
from bench.stack import HOST, cpu_seconds, outside_seconds, rss_kb  # noqa: E402

EMAIL = "bench-sse@example.test"
WORKERS = "2"
CONNECTIONS = "20000"
Publish = Callable[[dict[str, Any]], None]


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


def plan_maker(side: Side, path: str, token: str | None, args: argparse.Namespace) -> Any:
    """Return `make_plan(count, source_ip)` for a fleet aimed at `side`'s `path`."""
    port = int(side.env["PORT"])
    request = http_get(path, HOST, port, token)

    def make(count: int, source_ip: str) -> Plan:
        return Plan(
            HOST, port, request, count, source_ip, in_flight=args.ramp,
            max_failures=max(25, count // 50), record=path == side.latency_path,
        )  # fmt: skip

    return make


def measure_idle(side: Side, count: int, args: argparse.Namespace, out: Result) -> None:
    """Hold `count` idle streams for `--hold` s; fill in the idle half of `out`."""
    log = Path(args.tmp) / f"{side.name}-idle.log"
    with (
        stack.gunicorn(side.command, side.env, log, args.deadline, grace=side.grace) as server,
        sse_stack.redis_monitor(side.env["REDIS_URL"]) as monitor,
    ):
        token = side.login(server.base)
        time.sleep(1.0)
        workers = server.workers()
        out.requested = count
        out.rss_before_kb = rss_kb(workers)
        out.redis_before = int(redis_info(monitor)["connected"])
        busy, started = outside_seconds(), time.monotonic()
        with fleet(count, plan_maker(side, side.idle_path, token, args)) as (group, first):
            out.idle = merge(first)
            out.open_outside_cores = (outside_seconds() - busy) / (time.monotonic() - started)
            cpu, busy, started = cpu_seconds(workers), outside_seconds(), time.monotonic()
            time.sleep(args.hold)
            wall = time.monotonic() - started
            out.hold_cores = (cpu_seconds(workers) - cpu) / wall
            out.hold_outside_cores = (outside_seconds() - busy) / wall
            out.held = merge(group.ask("status"))
            out.rss_loaded_kb = rss_kb(server.workers())
            out.redis_during = int(redis_info(monitor)["connected"])
            out.notes.append(
                f"Redis clients by name while holding: {sse_stack.redis_clients_by_name(monitor)}"
            )
            fds = [stack.open_fds(pid) for pid in server.workers()]
            out.notes.append(f"open fds per worker while holding: {fds} (pids {workers})")
            group.ask("close")
    out.notes += [f"idle run, gunicorn log: {line}" for line in sse_stack.problems(server)]


def measure_latency(side: Side, count: int, args: argparse.Namespace, out: Result) -> None:
    """Publish `--rate` events/s to `count` subscribers; fill in the latency half of `out`."""
    log = Path(args.tmp) / f"{side.name}-latency.log"
    with (
        stack.gunicorn(side.command, side.env, log, args.deadline, grace=side.grace) as server,
        side.publisher() as publish,
    ):
        token = side.login(server.base)
        with fleet(count, plan_maker(side, side.latency_path, token, args)) as (group, first):
            out.subscribers = merge(first)
            time.sleep(1.0)
            workers = server.workers()
            cpu, busy, started = cpu_seconds(workers), outside_seconds(), time.monotonic()
            while time.monotonic() - started < args.duration:
                publish({"sent_ns": time.time_ns(), "seq": out.published})
                out.published += 1
                time.sleep(max(0.0, started + out.published / args.rate - time.monotonic()))
            wall = time.monotonic() - started
            out.publish_cores = (cpu_seconds(workers) - cpu) / wall
            out.publish_outside_cores = (outside_seconds() - busy) / wall
            time.sleep(2.0)  # stragglers
            out.latency = merge(group.ask("samples"))
    out.notes += [f"latency run, gunicorn log: {line}" for line in sse_stack.problems(server)]


def ours(env: dict[str, str], deadline: stack.Deadline) -> Side:
    """Our backend: the Procfile's `web` line, a bearer token from one login."""
    password = secrets.token_urlsafe(15)
    stack.prepare_database(env, EMAIL, password, deadline)
    config = {name: env[name] for name in stack.APP_CONFIG}

    def login(base: str) -> str:
        creds = {"email": EMAIL, "password": password, "device_name": "bench-sse"}
        response = httpx.post(f"{base}/api/v1/auth/login", json=creds, timeout=30, trust_env=False)
        if response.status_code != 200:
            raise RuntimeError(f"login failed: {response.status_code} {response.text[:300]}")
        return str(response.json()["access_token"])

    @contextmanager
    def publisher() -> Iterator[Publish]:
        from backend import create_app
        from backend.events import publish

        def send(data: dict[str, Any]) -> None:
            publish("products", "bench", data)

        with create_app(config).app_context():
            yield send

    return Side(
        "ours", stack.procfile()["web"], env, "/api/v1/events",
        "/api/v1/events?topics=products", 40.0, login, publisher,
    )  # fmt: skip


def baseline(env: dict[str, str]) -> Side:
    """The flask-sse-style app under the same gunicorn worker class, count and connections."""
    command = (
        f"gunicorn -k gevent -w {WORKERS} --worker-connections {CONNECTIONS} "
        f"--bind {HOST}:{env['PORT']} --no-control-socket --graceful-timeout 5 "
        "bench.sse_baseline_app:app"
    )

    def check_patched(base: str) -> None:
        health = httpx.get(f"{base}/healthz", timeout=10, trust_env=False).json()
        if not health.get("socket_patched"):
            raise RuntimeError("gevent did not patch socket in the baseline worker")

    @contextmanager
    def publisher() -> Iterator[Publish]:
        client = redis.Redis.from_url(env["REDIS_URL"])

        def send(data: dict[str, Any]) -> None:  # flask-sse's `sse.publish(data, type=...)`
            client.publish("products", json.dumps({"data": data, "type": "bench"}))

        try:
            yield send
        finally:
            client.close()

    return Side(
        "baseline", command, env, "/stream?channel=sse", "/stream?channel=products",
        10.0, check_patched, publisher,
    )  # fmt: skip


def run_side(side: Side, connections: int, args: argparse.Namespace) -> Result:
    """Run both measures against `side`, each on a fresh gunicorn."""
    result = Result()
    print(f"[{side.name}] idle: {connections} streams ...", file=sys.stderr, flush=True)
    measure_idle(side, connections, args, result)
    print(f"[{side.name}] latency: {args.subscribers} subscribers ...", file=sys.stderr)
    measure_latency(side, args.subscribers, args, result)
    return result


def interrupt(signum: int, _frame: object) -> None:
    """Turn SIGTERM / SIGALRM into exceptions so that every `finally` runs."""
    if signum == signal.SIGALRM:
        raise TimeoutError("the benchmark ran past --timeout")
    raise KeyboardInterrupt


def parse() -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    add = parser.add_argument
    add("--connections", type=int, default=20000, help="idle streams on our backend")
    add("--baseline-connections", type=int, default=5000, help="idle streams on the baseline")
    add("--subscribers", type=int, default=1000, help="streams in the latency measure")
    add("--duration", type=float, default=10.0, help="seconds of publishing")
    add("--rate", type=float, default=10.0, help="events per second")
    add("--hold", type=float, default=20.0, help="seconds to hold the idle streams")
    add("--ramp", type=int, default=50, help="handshakes in flight per load process")
    add("--skip-baseline", action="store_true", help="measure our backend only")
    add("--timeout", type=float, default=1500.0, help="overall limit in seconds")
    add("--keep", action="store_true", help="keep the temp folder (gunicorn logs)")
    return parser.parse_args()


def main() -> None:
    """Set up database and Redis, measure both sides, print the table; clean up always."""
    args = parse()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # create_app configures logging
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGALRM, interrupt)
    signal.alarm(int(args.timeout))
    args.deadline = stack.Deadline(args.timeout)
    args.tmp = tempfile.mkdtemp(prefix="bench-sse-")
    database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{args.tmp}/bench.db"
    try:
        with stack.embedded_redis_if_needed() as (redis_url, redis_kind):
            base_env = {
                **{k: v for k, v in os.environ.items() if k != "ENV"},
                "PATH": f"{stack.BIN}:{os.environ.get('PATH', '')}",
                "REDIS_URL": redis_url,
                "PYTHONUNBUFFERED": "1",
            }
            metrics = Path(args.tmp) / "prometheus"
            env = {
                **stack.production_env(database_url, redis_url, metrics, "1000/minute"),
                "PYTHONUNBUFFERED": "1", "PORT": str(stack.free_port()),
                "WEB_CONCURRENCY": WORKERS, "WORKER_CONNECTIONS": CONNECTIONS,
            }  # fmt: skip
            with sse_stack.redis_monitor(redis_url) as monitor:
                info = redis_info(monitor)
            results = {"ours": run_side(ours(env, args.deadline), args.connections, args)}
            if not args.skip_baseline:
                side = baseline({**base_env, "PORT": str(stack.free_port())})
                results["baseline"] = run_side(side, args.baseline_connections, args)
        signal.alarm(0)
        db_kind = "SQLite (temp file)" if database_url.startswith("sqlite") else "PostgreSQL"
        header = (
            f"machine: {sse_stack.machine()}, Python {platform.python_version()}\n"
            f"config: gunicorn -k gevent -w {WORKERS} --worker-connections {CONNECTIONS} "
            f"(ours: Procfile web, ENV=production, SSE_HEARTBEAT_SECONDS="
            f"{os.environ.get('SSE_HEARTBEAT_SECONDS', '15')}); {redis_kind} {info['version']} "
            f"maxclients {info['maxclients']}; {db_kind}; load: <= {sse_load.PER_PROCESS} "
            f"streams per process, {args.ramp} handshakes in flight each, loopback only; "
            f"hold {args.hold:g} s; {args.rate:g} events/s for {args.duration:g} s"
        )
        report(results, header, args.hold)
    finally:
        signal.alarm(0)
        if args.keep:
            print(f"logs kept in {args.tmp}", file=sys.stderr)
        else:
            shutil.rmtree(args.tmp, ignore_errors=True)


if __name__ == "__main__":
    try:
        main()
    except (TimeoutError, KeyboardInterrupt) as exc:
        sys.exit(f"bench/sse.py: stopped: {str(exc) or type(exc).__name__}")
