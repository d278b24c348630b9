"""SSE fan-out benchmark: our `GET /api/v1/events` beside a baseline, measured in one run.

Usage: `.venv/bin/python bench/sse.py [--scenario idle,latency,storm,loaded-latency | all]
[--connections N] [--baseline-connections N] [--subscribers N] [--duration S] [--rate R]
[--hold S] [--ramp K] [--storm N] [--storm-rate R] [--baseline-storm N] [--storm-topics T]
[--storm-pending K] [--workers W] [--worker-connections C] [--connect-timeout S]
[--skip-baseline] [--timeout S] [--keep]` (run it as a script; its helpers are imported as
`bench.*`). The default is `--scenario idle,latency`. Issue #20's storm and latency under load,
at its sizes (50,000 streams at 2,500/s, 3 workers, 1,000 subscribers at 10 events/s):
`.venv/bin/python bench/sse.py --scenario storm,loaded-latency` (on a quiet machine; the
default `--worker-connections` is whatever backend/gunicorn_conf.py decides, and a warning is
printed if W x C cannot hold N).

Scenarios, each side on a fresh gunicorn (ours: the Procfile's `web` line in production mode,
one user's Bearer token):
- idle: `--connections` streams (baseline: `--baseline-connections`) opened from separate load
  processes (`bench/sse_load.py`, `--ramp` handshakes in flight each), held `--hold` s; the
  workers' RSS and CPU from /proc, Redis `connected_clients`. 2 workers, 20000 connections;
  baseline `bench/sse_baseline_app.py` (flask-sse style: one Redis Pub/Sub connection per
  client, so it cannot go past Redis's maxclients).
- latency: `--subscribers` streams on `products`, `--rate` events/s for `--duration` s, each
  carrying its send time; receive − send percentiles, delivery, the workers' CPU. Same servers.
- storm: `--storm` streams started at `--storm-rate` per second, paced (stream i starts at
  t0 + i/rate whether earlier ones are done or not), held `--hold` s; requested / held /
  failures by reason, time to first byte and handshake percentiles, achieved rate, RSS per
  held stream, the workers' CPU, Redis connections (total and per worker, at 10 % of the
  streams and holding them all), fds per worker. `--workers` (3) workers; the baseline is
  `bench/sse_shared_baseline_app.py` (the 60-line shared-subscription app: one Redis
  subscriber per worker, gevent queues; flask-sse could not hold 10,000) under the same
  gunicorn settings, with `--baseline-storm` streams (default: as many as ours).
- loaded-latency: the latency measure while the storm's streams are still held (same
  gunicorn; selecting it runs the storm). The storm's streams read the caller's own channel
  only (unless `--storm-topics`), so the events on `products` reach the subscribers alone.
Each table is ours | baseline | ratio; the storm's ends with issue #20's `target ...: met`
lines (storm held with 0 failures and TTFB p99 <= 2 s; RSS <= 20 KB per held stream; p99 <=
30 ms under load; Redis connections per process constant as streams grow).

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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench")]

from bench import sse_load, sse_stack, stack  # noqa: E402 - needs the sys.path fix above
from bench.sse_load import Plan, fleet, http_get, merge  # noqa: E402
from bench.sse_report import Result, StormResult, report  # noqa: E402
from bench.sse_stack import redis_info  # noqa: E402
from bench.sse_storm import (  # noqa: E402
    Publish,
    Side,
    check_storm_limits,
    effective_worker_connections,
    measure_storm,
    publish_for,
    storm_report,
)
from bench.stack import HOST, cpu_seconds, outside_seconds, rss_kb  # noqa: E402

EMAIL = "bench-sse@example.test"
WORKERS = "2"
CONNECTIONS = "20000"
SCENARIOS = ("idle", "latency", "storm", "loaded-latency")


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
            out.published, out.publish_cores, out.publish_outside_cores = publish_for(
                publish, server.workers(), args
            )
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


def baseline(
    env: dict[str, str],
    name: str = "baseline",
    app: str = "bench.sse_baseline_app:app",
    workers: str = WORKERS,
    connections: str = CONNECTIONS,
) -> Side:
    """A baseline app (flask-sse style by default) under gunicorn's gevent worker."""
    command = (
        f"gunicorn -k gevent -w {workers} --worker-connections {connections} "
        f"--bind {HOST}:{env['PORT']} --no-control-socket --graceful-timeout 5 {app}"
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
        name, command, env, "/stream?channel=sse", "/stream?channel=products",
        10.0, check_patched, publisher,
    )  # fmt: skip


def storm_sides(our: Side, base_env: dict[str, str], args: argparse.Namespace) -> list[Side]:
    """Return the storm's sides: ours, and the shared-subscription baseline unless skipped.

    Ours gets `--workers` and `--worker-connections` (if unset: `WORKER_CONNECTIONS` from this
    environment, else the server's config decides); the baseline the same count and the
    connections that config arrived at.
    """
    env = {k: v for k, v in our.env.items() if k != "WORKER_CONNECTIONS"}
    env |= {"WEB_CONCURRENCY": str(args.workers), "PORT": str(stack.free_port())}
    wanted = args.worker_connections or os.environ.get("WORKER_CONNECTIONS")
    if wanted:
        env["WORKER_CONNECTIONS"] = str(wanted)
    args.effective_connections = effective_worker_connections(env)
    sides = [replace(our, env=env)]
    if not args.skip_baseline:
        shared_env = {**base_env, "PORT": str(stack.free_port())}
        sides.append(baseline(
            shared_env, "shared", "bench.sse_shared_baseline_app:app", str(args.workers),
            str(args.effective_connections),
        ))  # fmt: skip
    return sides


def run_side(side: Side, connections: int, args: argparse.Namespace) -> Result:
    """Run the selected idle / latency measures against `side`, each on a fresh gunicorn."""
    result = Result()
    if "idle" in args.scenarios:
        print(f"[{side.name}] idle: {connections} streams ...", file=sys.stderr, flush=True)
        measure_idle(side, connections, args, result)
    if "latency" in args.scenarios:
        print(f"[{side.name}] latency: {args.subscribers} subscribers ...", file=sys.stderr)
        measure_latency(side, args.subscribers, args, result)
    return result


def run_storms(sides: list[Side], args: argparse.Namespace) -> dict[str, StormResult]:
    """Run the storm (and loaded-latency, if selected) against each side, fresh gunicorns."""
    loaded = "loaded-latency" in args.scenarios
    results = {}
    for side in sides:
        count = args.storm if side.name == "ours" else args.baseline_storm or args.storm
        what = f"{count:,} streams at {args.storm_rate:,.0f}/s" + (", then latency" * loaded)
        print(f"[{side.name}] storm: {what} ...", file=sys.stderr, flush=True)
        results[side.name] = measure_storm(side, count, args, loaded)
    return results


def interrupt(signum: int, _frame: object) -> None:
    """Turn SIGTERM / SIGALRM into exceptions so that every `finally` runs."""
    if signum == signal.SIGALRM:
        raise TimeoutError("the benchmark ran past --timeout")
    raise KeyboardInterrupt


def parse() -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    add = parser.add_argument
    add(
        "--scenario",
        default="idle,latency",
        help=f"comma-separated, of {', '.join(SCENARIOS)} or all (loaded-latency runs the storm)",
    )
    add("--connections", type=int, default=20000, help="idle streams on our backend")
    add("--baseline-connections", type=int, default=5000, help="idle streams on the baseline")
    add("--subscribers", type=int, default=1000, help="streams in the latency measures")
    add("--duration", type=float, default=10.0, help="seconds of publishing")
    add("--rate", type=float, default=10.0, help="events per second")
    add("--hold", type=float, default=20.0, help="seconds to hold the idle / storm streams")
    add("--ramp", type=int, default=50, help="handshakes in flight per load process")
    add("--storm", type=int, default=50000, help="storm streams on our backend")
    add("--storm-rate", type=float, default=2500.0, help="storm streams started per second")
    add("--baseline-storm", type=int, help="storm streams on the shared baseline (--storm)")
    add(
        "--storm-topics",
        default="",
        help="?topics= of the storm's streams (default none: the caller's channel only, so the "
        "loaded-latency events on products do not reach them)",
    )
    add(
        "--storm-pending",
        type=int,
        help="handshakes pending at once per load process (default: no cap)",
    )
    add("--workers", type=int, default=3, help="gunicorn workers in the storm scenarios")
    add(
        "--worker-connections",
        type=int,
        help="WORKER_CONNECTIONS in the storm scenarios (default: the server's config decides)",
    )
    add("--connect-timeout", type=float, default=30.0, help="seconds for a stream's handshake")
    add("--skip-baseline", action="store_true", help="measure our backend only")
    add("--timeout", type=float, default=2400.0, help="overall limit in seconds")
    add("--keep", action="store_true", help="keep the temp folder (gunicorn logs)")
    args = parser.parse_args()
    names = {n.strip() for n in args.scenario.split(",") if n.strip()}
    args.scenarios = set(SCENARIOS) if "all" in names else names
    if unknown := args.scenarios - set(SCENARIOS):
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    return args  # fmt: skip


def main() -> None:
    """Set up database and Redis, measure the selected scenarios, print the tables; clean up."""
    args = parse()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # create_app configures logging
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even if started with it ignored
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGALRM, interrupt)
    signal.alarm(int(args.timeout))
    args.deadline = stack.Deadline(args.timeout)
    args.tmp = tempfile.mkdtemp(prefix="bench-sse-")
    database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{args.tmp}/bench.db"
    old = args.scenarios & {"idle", "latency"}
    storms = args.scenarios & {"storm", "loaded-latency"}
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
            our = ours(env, args.deadline)
            results, storm_results = {}, {}
            if old:
                results["ours"] = run_side(our, args.connections, args)
                if not args.skip_baseline:
                    side = baseline({**base_env, "PORT": str(stack.free_port())})
                    results["baseline"] = run_side(side, args.baseline_connections, args)
            if storms:
                sides = storm_sides(our, base_env, args)
                check_storm_limits(args)
                storm_results = run_storms(sides, args)
        signal.alarm(0)
        db_kind = "SQLite (temp file)" if database_url.startswith("sqlite") else "PostgreSQL"
        print(f"command: .venv/bin/python bench/sse.py {' '.join(sys.argv[1:])}".rstrip())
        print(
            f"machine: {sse_stack.machine()}, Python {platform.python_version()}; {redis_kind} "
            f"{info['version']} maxclients {info['maxclients']}; {db_kind}; "
            f"SSE_HEARTBEAT_SECONDS={os.environ.get('SSE_HEARTBEAT_SECONDS', '15')}; load: <= "
            f"{sse_load.PER_PROCESS} streams per process, each from its own 127.0.0.x (loopback)"
        )
        if old:
            header = (
                f"idle/latency config: gunicorn -k gevent -w {WORKERS} --worker-connections "
                f"{CONNECTIONS} (ours: Procfile web, ENV=production; baseline: "
                f"bench/sse_baseline_app.py, flask-sse style); {args.ramp} handshakes in flight "
                f"per load process; hold {args.hold:g} s; {args.rate:g} events/s for "
                f"{args.duration:g} s"
            )
            report(results, header, args.hold)
        if storms:
            storm_report(storm_results, args)
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
