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
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
BASH = shutil.which("bash") or "/bin/bash"
EMAIL = "bench@example.test"
Request = Callable[[httpx.Client], None]
_deadline = float("inf")
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


def remaining() -> float:
    """Return the seconds left before the overall timeout; raise `TimeoutError` past it."""
    left = _deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("the benchmark ran past --timeout")
    return left


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def procfile() -> dict[str, str]:
    """Return the Procfile's commands by process name."""
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line.strip() and not line.startswith("#"))


def run(command: str, env: dict[str, str]) -> None:
    """Run a shell command line from the project root; raise with its output if it fails."""
    result = subprocess.run(  # noqa: S603 - fixed command lines from this script and the Procfile
        [BASH, "-c", command], env=env, cwd=ROOT, capture_output=True, text=True,
        timeout=min(120.0, remaining()), check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise RuntimeError(f"{command!r} failed:\n{result.stdout}{result.stderr}")


@contextmanager
def embedded_redis_if_needed() -> Iterator[tuple[str, str]]:
    """Yield `REDIS_URL` and its description, starting (and stopping) the embedded server."""
    if os.environ.get("REDIS_URL"):
        yield os.environ["REDIS_URL"], "machine Redis"
        return
    from backend.embedded_redis import EmbeddedRedis

    server = EmbeddedRedis()
    try:
        yield server.start(), "embedded Redis (unix socket)"
    finally:
        server.stop()


@contextmanager
def gunicorn(env: dict[str, str], log_path: Path) -> Iterator[str]:
    """Start the Procfile's `web` line, wait for `/healthz`, yield its URL; SIGTERM at the end."""
    base = f"http://127.0.0.1:{env['PORT']}"
    with log_path.open("w") as log:
        web = subprocess.Popen(  # noqa: S603 - the Procfile's own command line
            [BASH, "-c", "exec " + procfile()["web"]], env=env, cwd=ROOT,
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        while True:
            if web.poll() is not None:
                raise RuntimeError(f"gunicorn exited:\n{log_path.read_text()[-3000:]}")
            with suppress(httpx.TransportError):
                if httpx.get(f"{base}/healthz", timeout=2, trust_env=False).status_code == 200:
                    break
            time.sleep(min(0.2, remaining()))
        yield base
    finally:
        web.send_signal(signal.SIGTERM)
        try:
            web.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(web.pid, signal.SIGKILL)
            web.wait()


def expect(response: httpx.Response, status: int) -> httpx.Response:
    """Return `response`, or raise if its status is not `status`."""
    if response.status_code != status:
        raise RuntimeError(f"{response.request.url}: {response.status_code} {response.text[:300]}")
    return response


def measure(name: str, base: str, request: Request, n: int, warmup: int, conc: int) -> Row:
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
                    remaining()
                    request(client)
                barrier.wait(timeout=remaining())
                for _ in range(count):
                    remaining()
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


def http_rows(base: str, password: str, n: int, conc: int) -> tuple[list[Row], int]:
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
        measure(BASELINE, base, get("/healthz", 200), n, 50, conc),
        measure("GET /users/me, no token (401)", base, get(me, 401), n, 50, conc),
        measure(ME, base, get(me, 200, bearer), n, 50, conc),
        measure("POST /auth/refresh, rotation chain", base, rotate, n, 50, 1),
        measure("POST /auth/login (argon2id)", base, login, min(n, 40), 3, min(conc, 40)),
    ]
    payload = pair["access_token"].split(".")[1]
    sid = int(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sid"])
    return rows, sid


def report(rows: list[Row], header: str) -> None:
    """Print the aligned table and the derived figures."""
    table = [["operation", "n", "conc", "p50", "p99", "mean", "calls/s"]]
    table += [row.cells() for row in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    print(header)
    for i, cells in enumerate(table):
        pairs = enumerate(zip(cells, widths, strict=True))
        print("  ".join(c.rjust(w) if j else c.ljust(w) for j, (c, w) in pairs))
        if i == 0:
            print("  ".join("-" * w for w in widths))
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
    global _deadline
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500, help="timed requests per row")
    parser.add_argument("--concurrency", type=int, default=1, help="client threads")
    parser.add_argument("--timeout", type=float, default=300, help="overall limit in seconds")
    args = parser.parse_args()
    _deadline = time.monotonic() + args.timeout
    sys.path.insert(0, str(ROOT))
    tmp = Path(tempfile.mkdtemp(prefix="bench-auth-"))
    database_url = os.environ.get("DATABASE_URL") or f"sqlite:///{tmp}/bench.db"
    try:
        with embedded_redis_if_needed() as (redis_url, redis_kind):
            config = {
                "ENV": "production",
                "SECRET_KEY": secrets.token_urlsafe(36),  # 48 characters
                "JWT_SECRET_KEY": secrets.token_urlsafe(36),
                "DATABASE_URL": database_url,
                "REDIS_URL": redis_url,
            }
            env = {
                **{k: v for k, v in os.environ.items() if k not in ("ENV",)},
                **config,
                "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
                "HOST": "127.0.0.1",
                "PORT": str(free_port()),
                "WEB_CONCURRENCY": "2",
                "RATELIMIT_LOGIN_PER_IP": "100000/minute",
                "RATELIMIT_LOGIN_PER_EMAIL": "100000/minute",
                "RATELIMIT_WRITES": "100000/minute",
                "PROMETHEUS_MULTIPROC_DIR": str(tmp / "prometheus"),  # leave var/ alone
            }
            password = secrets.token_urlsafe(15)  # 20 characters
            run(procfile()["release"], env)
            run(f"flask --app wsgi create-admin --email {EMAIL} --password={password}", env)
            with gunicorn(env, tmp / "gunicorn.log") as base:
                rows, sid = http_rows(base, password, args.requests, args.concurrency)
            rows += in_process(config, sid, 2000)
        db_kind = "SQLite (temporary file)" if database_url.startswith("sqlite") else "PostgreSQL"
        header = (
            f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}; "
            f"config: {db_kind}, {redis_kind}, gunicorn gevent workers=2, ENV=production, "
            f"client: httpx keep-alive, concurrency={args.concurrency}"
        )
        report(rows, header)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    try:
        main()
    except TimeoutError as exc:
        sys.exit(f"bench/auth.py: {exc}")
