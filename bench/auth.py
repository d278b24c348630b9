"""Auth latency benchmark: the Procfile's `web` process in production mode, driven over HTTP.

Usage: `.venv/bin/python bench/auth.py [--requests N] [--concurrency C] [--timeout S]`.
Uses `DATABASE_URL` / `REDIS_URL` when set (nothing is dropped or flushed), else a temporary
SQLite file and the embedded Redis. `/healthz` is the baseline, measured in the same run.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import secrets
import statistics
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench")]

from bench.stack import (  # noqa: E402 - needs the sys.path fix above
    APP_CONFIG,
    Deadline,
    embedded_redis_if_needed,
    expect,
    free_port,
    gunicorn,
    prepare_database,
    print_table,
    procfile,
    production_env,
    scratch,
)

EMAIL = "bench@example.test"
Request = Callable[[httpx.Client], None]
BASELINE = "GET /healthz (baseline)"
ME = "GET /users/me, valid token"
CHECK = "is_active(sid), warm cache [in-process]"
PING = "Redis PING, same client [in-process]"


@dataclass
class Row:
    """One measured operation: per-call latencies (seconds) and the wall time they took."""

    name: str
    samples: list[float]
    wall: float
    concurrency: int
    unit: str = "ms"

    def cells(self) -> list[str]:
        """Return the table cells: name, n, concurrency, p50, p99, mean, calls/s."""
        scale = 1e3 if self.unit == "ms" else 1e6
        p99 = statistics.quantiles(self.samples, n=100, method="inclusive")[98]
        stats = (statistics.median(self.samples), p99, statistics.fmean(self.samples))
        values = [f"{v * scale:.2f} {self.unit}" for v in stats]
        rate = len(self.samples) / self.wall
        return [self.name, str(len(self.samples)), str(self.concurrency), *values, f"{rate:,.0f}"]


def measure(
    name: str, base: str, request: Request, n: int, warmup: int, conc: int, deadline: Deadline
) -> Row:
    """Time `n` calls of `request` over `conc` threads, each with its own keep-alive client.

    Warm-up calls are not counted; the wall time runs from the moment every thread has
    warmed up to the last thread's end.
    """
    started: list[float] = []
    barrier = threading.Barrier(conc, action=lambda: started.append(time.perf_counter()))

    def worker(count: int, warm: int) -> tuple[list[float], float]:
        times = []
        try:
            with httpx.Client(base_url=base, timeout=10, trust_env=False) as client:
                for _ in range(warm):
                    deadline.remaining()
                    request(client)
                barrier.wait(timeout=deadline.remaining())
                for _ in range(count):
                    deadline.remaining()
                    start = time.perf_counter()
                    request(client)
                    times.append(time.perf_counter() - start)
        except BaseException:
            barrier.abort()  # release the other threads rather than leave them waiting
            raise
        return times, time.perf_counter()

    def share(total: int, i: int) -> int:
        return total // conc + (i < total % conc)

    with ThreadPoolExecutor(conc) as pool:
        jobs = [pool.submit(worker, share(n, i), share(warmup, i)) for i in range(conc)]
        results = [job.result() for job in jobs]
    wall = max(end for _, end in results) - started[0]
    return Row(name, [t for times, _ in results for t in times], wall, conc)


def time_calls(name: str, call: Callable[[], object], n: int) -> Row:
    """Time `n` in-process calls of `call` after a warm-up of 50, in microseconds."""
    for _ in range(50):
        call()
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        call()
        samples.append(time.perf_counter() - start)
    return Row(name, samples, sum(samples), 1, unit="µs")


def in_process(config: dict[str, str], sid: int, n: int) -> list[Row]:
    """Time `sessions.is_active(sid)` (warm cache) against a bare PING on the same Redis client."""
    from backend import create_app
    from backend.db import db
    from backend.redis_store import get_redis
    from backend.services import sessions

    with create_app(config).app_context(), db.connection_context():
        if not sessions.is_active(sid):
            raise RuntimeError(f"session {sid} is not active")
        check = time_calls(CHECK, lambda: sessions.is_active(sid), n)
        return [check, time_calls(PING, get_redis().ping, n)]


def http_rows(
    base: str, password: str, n: int, conc: int, deadline: Deadline
) -> tuple[list[Row], int]:
    """Measure the HTTP rows; return them and the session id of the token used."""
    creds = {"email": EMAIL, "password": password, "device_name": "bench"}
    with httpx.Client(base_url=base, timeout=10, trust_env=False) as client:
        pair = expect(client.post("/api/v1/auth/login", json=creds), 200).json()
    bearer = {"Authorization": f"Bearer {pair['access_token']}"}
    refresh = [pair["refresh_token"]]

    def rotate(client: httpx.Client) -> None:
        headers = {"Authorization": f"Bearer {refresh[0]}"}
        refresh[0] = expect(client.post("/api/v1/auth/refresh", headers=headers), 200).json()[
            "refresh_token"
        ]

    def get(path: str, status: int, headers: dict[str, str] | None = None) -> Request:
        def request(client: httpx.Client) -> None:
            expect(client.get(path, headers=headers), status)

        return request

    def login(client: httpx.Client) -> None:
        expect(client.post("/api/v1/auth/login", json=creds), 200)

    me = "/api/v1/users/me"
    rows = [
        measure(BASELINE, base, get("/healthz", 200), n, 50, conc, deadline),
        measure("GET /users/me, no token (401)", base, get(me, 401), n, 50, conc, deadline),
        measure(ME, base, get(me, 200, bearer), n, 50, conc, deadline),
        measure("POST /auth/refresh, rotation chain", base, rotate, n, 50, 1, deadline),
        measure("POST /auth/login (argon2id)", base, login, min(n, 40), 3, min(conc, 40), deadline),
    ]
    payload = pair["access_token"].split(".")[1]
    sid = int(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sid"])
    return rows, sid


def report(rows: list[Row], header: str) -> None:
    """Print the aligned table and the derived figures."""
    table = [["operation", "n", "conc", "p50", "p99", "mean", "calls/s"]]
    table += [row.cells() for row in rows]
    print(header)
    print_table(table)
    by = {row.name: row for row in rows}
    extra = statistics.median(by[ME].samples) - statistics.median(by[BASELINE].samples)
    check = statistics.fmean(by[CHECK].samples) * 1e6
    ping = statistics.fmean(by[PING].samples) * 1e6
    print(
        f"revocation check + user lookup add {extra * 1e3:.2f} ms at p50 over /healthz; "
        f"the revocation check alone costs {check:.0f} µs ({ping:.0f} µs for a bare Redis PING)"
    )


def main() -> None:
    """Parse options, set up database, Redis and gunicorn, measure, and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500, help="timed requests per row")
    parser.add_argument("--concurrency", type=int, default=1, help="client threads")
    parser.add_argument("--timeout", type=float, default=300, help="overall limit in seconds")
    args = parser.parse_args()
    deadline = Deadline(args.timeout)
    with (
        scratch("bench-auth-") as (tmp, database_url),
        embedded_redis_if_needed() as (redis_url, redis_kind),
    ):
        env = production_env(database_url, redis_url, tmp / "prometheus")
        env["PORT"] = str(free_port())
        config = {name: env[name] for name in APP_CONFIG}
        password = secrets.token_urlsafe(15)  # 20 characters
        prepare_database(env, EMAIL, password, deadline)
        with gunicorn(procfile()["web"], env, tmp / "gunicorn.log", deadline) as server:
            rows, sid = http_rows(server.base, password, args.requests, args.concurrency, deadline)
        rows += in_process(config, sid, 2000)
    db_kind = "SQLite (temporary file)" if database_url.startswith("sqlite") else "PostgreSQL"
    header = (
        f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"config: {db_kind}, {redis_kind}, gunicorn gevent workers=2, ENV=production, "
        f"client: httpx keep-alive, concurrency={args.concurrency}"
    )
    report(rows, header)


if __name__ == "__main__":
    try:
        main()
    except TimeoutError as exc:
        sys.exit(f"bench/auth.py: {exc}")
