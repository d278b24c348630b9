"""REST throughput and latency: catalog reads and order placement beside a bare-Flask ceiling.

Usage: `.venv/bin/python bench/rest.py [--duration S] [--connections N] [--timeout S]`.

Two servers run under the Procfile's gunicorn settings (`-c python:backend.gunicorn_conf`,
gevent, `WEB_CONCURRENCY=2`): the app in production mode, and `bench/ceiling_app.py`, a bare
Flask app returning a static JSON body. Each row is measured twice, back to back in one run:

- max req/s: `--connections` keep-alive connections, each sending its next request as soon as
  the previous answer arrives (closed loop), for `--duration` seconds after a 1 s warm-up;
- latency: an open loop at half that row's max rate for `--duration` seconds; a request's
  latency runs from the moment it was due (so a stalled server cannot hide queued requests).

The ceiling is measured first and again last; ratios are against the mean of the two.
The authenticated reads (a buyer's Bearer token on `GET /orders/{id}` and `GET /users/me`)
must reach 0.3x the ceiling on SQLite and 0.25x on PostgreSQL. The load
generator is one asyncio process speaking minimal HTTP/1.1 over raw sockets (an httpx client
spends several times more CPU per request, and it shares the 2 cores with the server); its CPU
use is shown per row. Uses `DATABASE_URL` / `REDIS_URL` when set (nothing is dropped or
flushed), else a temporary SQLite file and the embedded Redis. Only 127.0.0.1 is contacted.
The app runs with the optimisation layer on (production's default); `OPTIMIZATIONS=0` in the
environment measures the main path alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import secrets
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench")]

from bench.stack import (  # noqa: E402 - needs the sys.path fix above
    HOST,
    Deadline,
    embedded_redis_if_needed,
    expect,
    free_port,
    gunicorn,
    outside_seconds,
    prepare_database,
    print_table,
    procfile,
    production_env,
    scratch,
)

ADMIN = "bench-admin@example.test"
BUYER = "bench-buyer@example.test"
GENEROUS = "1000000/minute"
WARMUP_SECONDS = 1.0
PRODUCT_READ_TARGET = 0.8  # x the ceiling
AUTHENTICATED_READ_TARGET = {"sqlite": 0.3, "postgresql": 0.25}  # x the ceiling, by database
AUTHENTICATED_ROWS = ("GET /api/v1/orders/", "GET /api/v1/users/me")
P99_TARGET_MS = 20.0
MAX_PACED_CONNECTIONS = 512  # an open loop opens more connections when the server lags
CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)
OFF = ("0", "false", "no", "off")  # `OPTIMIZATIONS` values that turn the layer off
BUSY_MACHINE = 0.15  # cores used by other processes during a row that make its figures doubtful


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection carrying one request at a time.

    Just enough HTTP for this benchmark: responses must have a `Content-Length`.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.pending: asyncio.Future[int] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport (asyncio already sets TCP_NODELAY)."""
        if not isinstance(transport, asyncio.Transport):
            raise TypeError(f"not a stream transport: {transport!r}")
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        """Collect bytes; complete the pending request once its whole response is in."""
        self.buffer += data
        pending = self.pending
        if pending is None or pending.done():
            return
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buffer[:end])
        length = CONTENT_LENGTH.search(head)
        if length is None:
            pending.set_exception(RuntimeError(f"no Content-Length in {head[:200]!r}"))
            return
        total = end + 4 + int(length.group(1))
        if len(self.buffer) < total:
            return
        del self.buffer[:total]
        if b"\r\nconnection: close" in head.lower():
            self.closed = True
        pending.set_result(int(head[9:12]))

    def connection_lost(self, exc: Exception | None) -> None:
        """Fail the pending request, if any."""
        self.closed = True
        if self.pending is not None and not self.pending.done():
            self.pending.set_exception(ConnectionError(f"connection lost: {exc}"))

    async def send(self, request: bytes) -> int:
        """Send one raw request and return the response's status code."""
        if self.transport is None:
            raise ConnectionError("not connected")
        self.pending = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.pending

    def close(self) -> None:
        """Close the socket."""
        if self.transport is not None:
            self.transport.close()


async def connect(port: int) -> Connection:
    """Open a connection to 127.0.0.1:`port`."""
    _, protocol = await asyncio.get_running_loop().create_connection(Connection, HOST, port)
    return protocol


@dataclass(frozen=True)
class Target:
    """What a row requests: the server port, the raw request and the expected status."""

    name: str
    port: int
    request: bytes
    status: int


def raw_request(
    method: str, port: int, path: str, body: object = None, token: str | None = None
) -> bytes:
    """Return an HTTP/1.1 keep-alive request as bytes."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{port}", "Accept: application/json"]
    if token is not None:
        lines.append(f"Authorization: Bearer {token}")
    payload = b""
    if body is not None:
        payload = json.dumps(body, separators=(",", ":")).encode()
        lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


@dataclass
class Row:
    """One target's figures."""

    name: str
    max_rate: float = 0.0
    client_cpu: float = 0.0  # share of one core used by the load generator at max rate
    paced_rate: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    foreign_cpu: float = 0.0  # cores used by processes outside this benchmark meanwhile

    def percentile_ms(self, q: int) -> float:
        """Return the `q`th percentile latency of the paced phase in milliseconds."""
        if len(self.latencies) < 2:
            return float("nan")
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[q - 1] * 1e3


async def saturate(
    target: Target, connections: int, duration: float, deadline: Deadline
) -> tuple[float, float, int]:
    """Closed loop over `connections` connections; return req/s, client CPU share, errors.

    Requests completing during the warm-up second are not counted.
    """
    loop = asyncio.get_running_loop()
    pool = [await connect(target.port) for _ in range(connections)]
    start = loop.time()
    counted_from, end = start + WARMUP_SECONDS, start + WARMUP_SECONDS + duration
    counts = [0] * connections
    errors = [0] * connections
    cpu: list[float] = []

    async def drive(slot: int) -> None:
        conn = pool[slot]
        while (now := loop.time()) < end:
            if not cpu and now >= counted_from:
                cpu.append(time.process_time())
            try:
                status = await conn.send(target.request)
            except ConnectionError:
                status = 0
            done = loop.time()
            if counted_from <= done < end:
                counts[slot] += 1
                errors[slot] += status != target.status
            if conn.closed:
                conn.close()
                conn = pool[slot] = await connect(target.port)

    await asyncio.wait_for(
        asyncio.gather(*(drive(i) for i in range(connections))),
        timeout=min(WARMUP_SECONDS + duration + 30, deadline.remaining()),
    )
    cpu_used = time.process_time() - (cpu[0] if cpu else time.process_time())
    for conn in pool:
        conn.close()
    return sum(counts) / duration, cpu_used / duration, sum(errors)


async def paced(
    target: Target, rate: float, duration: float, connections: int, deadline: Deadline
) -> tuple[list[float], int]:
    """Open loop at `rate` req/s for `duration` s; return latencies (s) and errors.

    A request that finds no idle connection opens a new one (up to
    `MAX_PACED_CONNECTIONS`, then it waits), as independent clients would.
    """
    idle: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(connections):
        idle.put_nowait(await connect(target.port))
    opened = [connections]
    latencies: list[float] = []
    errors = [0]

    async def one(due: float) -> None:
        if not idle.empty() or opened[0] >= MAX_PACED_CONNECTIONS:
            conn = await idle.get()
        else:
            opened[0] += 1
            conn = await connect(target.port)
        try:
            status = await conn.send(target.request)
        except ConnectionError:
            status = 0
        latencies.append(time.perf_counter() - due)
        errors[0] += status != target.status
        if conn.closed:
            conn.close()
            opened[0] -= 1
        else:
            idle.put_nowait(conn)

    tasks = []
    first = time.perf_counter() + 0.05
    for i in range(max(1, int(rate * duration))):
        due = first + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(due)))
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=min(30.0, deadline.remaining()))
    while not idle.empty():
        idle.get_nowait().close()
    return latencies, errors[0]


async def measure(
    targets: list[Target], connections: int, duration: float, deadline: Deadline
) -> list[Row]:
    """Measure each target in turn: max rate, then latency at half of it."""
    rows = []
    for target in targets:
        row = Row(target.name)
        started, outside = time.monotonic(), outside_seconds()
        row.max_rate, row.client_cpu, errors = await saturate(
            target, connections, duration, deadline
        )
        row.paced_rate = row.max_rate / 2
        row.latencies, paced_errors = await paced(
            target, row.paced_rate, duration, connections, deadline
        )
        row.errors = errors + paced_errors
        foreign = outside_seconds() - outside
        row.foreign_cpu = max(0.0, foreign) / (time.monotonic() - started)
        rows.append(row)
        print(f"  measured {target.name}", file=sys.stderr, flush=True)
    return rows


def seed(base: str, password: str) -> tuple[int, str]:
    """Create 20 products (one with huge stock) as the admin and a buyer; return both ids."""
    with httpx.Client(base_url=f"{base}/api/v1", timeout=10, trust_env=False) as client:
        login = {"email": ADMIN, "password": password}
        admin = expect(client.post("/auth/login", json=login), 200).json()["access_token"]
        bearer = {"Authorization": f"Bearer {admin}"}
        ids = []
        for i in range(20):
            product = {
                "sku": f"BENCH-{i:02d}",
                "name": f"Bench product {i:02d}",
                "description": "A product seeded by bench/rest.py.",
                "price": f"{10 + i}.99",
                "stock": 1_000_000_000 if i == 0 else 100,
            }
            created = expect(client.post("/products", json=product, headers=bearer), 201)
            ids.append(created.json()["id"])
        buyer = {"email": BUYER, "password": password}
        expect(client.post("/auth/register", json=buyer), 201)
        token = expect(client.post("/auth/login", json=buyer), 200).json()["access_token"]
    return ids[0], str(token)


def seed_order(base: str, token: str, product_id: int) -> int:
    """Place one order as the buyer (`token`); return its id, for the authenticated reads."""
    order = {"items": [{"product_id": product_id, "quantity": 1}]}
    with httpx.Client(base_url=f"{base}/api/v1", timeout=10, trust_env=False) as client:
        bearer = {"Authorization": f"Bearer {token}"}
        return int(expect(client.post("/orders", json=order, headers=bearer), 201).json()["id"])


def authenticated_targets(port: int, token: str, order_id: int) -> list[Target]:
    """The rows Flet apps send most: the buyer's Bearer token on an order and on its profile."""
    return [
        Target(f"GET /api/v1/orders/{order_id} (Bearer)", port,
               raw_request("GET", port, f"/api/v1/orders/{order_id}", token=token), 200),
        Target("GET /api/v1/users/me (Bearer)", port,
               raw_request("GET", port, "/api/v1/users/me", token=token), 200),
    ]  # fmt: skip


def report_authenticated(rows: list[Row], database_url: str) -> None:
    """Print whether the authenticated reads meet their target against the ceiling."""
    ceiling = statistics.fmean(row.max_rate for row in rows if row.name.startswith("ceiling"))
    kind = "sqlite" if database_url.startswith("sqlite") else "postgresql"
    goal = AUTHENTICATED_READ_TARGET[kind]
    for row in rows:
        if row.name.startswith(AUTHENTICATED_ROWS):
            ratio = row.max_rate / ceiling
            verdict = "met" if ratio >= goal else "NOT met"
            print(f"target {row.name}: {ratio:.2f}x >= {goal}x ceiling ({kind}): {verdict}")


def report(rows: list[Row], header: str) -> None:
    """Print the aligned table, the ratios to the ceiling and whether the targets are met."""
    ceilings = [row for row in rows if row.name.startswith("ceiling")]
    ceiling = statistics.fmean(row.max_rate for row in ceilings)
    table = [["endpoint", "max req/s", "x ceiling", "client CPU", "paced req/s", "p50", "p99",
              "errors", "other CPU"]]  # fmt: skip
    for row in rows:
        table.append([
            row.name, f"{row.max_rate:,.0f}", f"{row.max_rate / ceiling:.2f}",
            f"{row.client_cpu * 100:.0f}%", f"{row.paced_rate:,.0f}",
            f"{row.percentile_ms(50):.2f} ms", f"{row.percentile_ms(99):.2f} ms", str(row.errors),
            f"{row.foreign_cpu:.2f} cores",
        ])  # fmt: skip
    print(header)
    print_table(table)
    print(
        f"ratios are against the mean ceiling, {ceiling:,.0f} req/s; client CPU: the load "
        "generator's share of one core at max rate; other CPU: cores used meanwhile by "
        "processes outside this benchmark"
    )
    noisy = [row.name for row in rows if row.foreign_cpu > BUSY_MACHINE]
    if noisy:
        print(f"WARNING: the machine was busy with other work during: {', '.join(noisy)}")
    for row in rows:
        if row.name.startswith("ceiling"):
            continue
        checks = [f"p99 {row.percentile_ms(99):.1f} ms <= {P99_TARGET_MS:.0f} ms: "
                  + ("met" if row.percentile_ms(99) <= P99_TARGET_MS else "NOT met")]  # fmt: skip
        if row.name.startswith("GET /api/v1/products"):
            ratio = row.max_rate / ceiling
            verdict = "met" if ratio >= PRODUCT_READ_TARGET else "NOT met"
            checks.insert(0, f"{ratio:.2f}x >= {PRODUCT_READ_TARGET}x ceiling: {verdict}")
        print(f"target {row.name}: {'; '.join(checks)}")


def main() -> None:
    """Parse options, start both servers, seed, measure back to back, and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per phase")
    parser.add_argument("--connections", type=int, default=64, help="keep-alive connections")
    parser.add_argument("--timeout", type=float, default=240, help="overall limit in seconds")
    args = parser.parse_args()
    deadline = Deadline(args.timeout)
    web = procfile()["web"]
    ceiling_command = web.replace("wsgi:app", "bench.ceiling_app:app")
    if ceiling_command == web:
        raise RuntimeError(f"cannot find wsgi:app in the Procfile's web line {web!r}")
    with (
        scratch("bench-rest-") as (tmp, database_url),
        embedded_redis_if_needed() as (redis_url, redis_kind),
    ):
        env = production_env(database_url, redis_url, tmp / "prometheus-app", GENEROUS)
        # Each run registers a buyer: without this, the 21st run within an hour on the same
        # Redis (REDIS_URL, which is never flushed) failed with 429 before measuring anything.
        env["RATELIMIT_REGISTER_PER_IP"] = GENEROUS
        env["PORT"] = str(free_port())
        ceiling_metrics = tmp / "prometheus-ceiling"
        ceiling_metrics.mkdir()
        ceiling_env = {**env, "PORT": str(free_port()),
                       "PROMETHEUS_MULTIPROC_DIR": str(ceiling_metrics)}  # fmt: skip
        password = secrets.token_urlsafe(15)  # 20 characters
        prepare_database(env, ADMIN, password, deadline)
        with (
            gunicorn(web, env, tmp / "app.log", deadline) as app,
            gunicorn(ceiling_command, ceiling_env, tmp / "ceiling.log", deadline, "/ping"),
        ):
            product_id, token = seed(app.base, password)
            order_id = seed_order(app.base, token, product_id)
            port, ceiling_port = int(env["PORT"]), int(ceiling_env["PORT"])
            ceiling = Target("ceiling: bare Flask GET /ping", ceiling_port,
                             raw_request("GET", ceiling_port, "/ping"), 200)  # fmt: skip
            order = {"items": [{"product_id": product_id, "quantity": 1}]}
            targets = [
                ceiling,
                Target(f"GET /api/v1/products/{product_id}", port,
                       raw_request("GET", port, f"/api/v1/products/{product_id}"), 200),
                Target("GET /api/v1/products?page=1", port,
                       raw_request("GET", port, "/api/v1/products?page=1"), 200),
                Target("POST /api/v1/orders", port,
                       raw_request("POST", port, "/api/v1/orders", order, token), 201),
                *authenticated_targets(port, token, order_id),
                Target("ceiling (again)", ceiling_port, ceiling.request, 200),
            ]  # fmt: skip
            rows = asyncio.run(measure(targets, args.connections, args.duration, deadline))
    db_kind = "SQLite (temporary file)" if database_url.startswith("sqlite") else "PostgreSQL"
    layer = "off" if os.environ.get("OPTIMIZATIONS", "").strip().lower() in OFF else "on"
    header = (
        f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}; "
        f"config: {db_kind}, {redis_kind}, gunicorn gevent workers=2, ENV=production, "
        f"optimisations {layer}; "
        f"client: asyncio raw HTTP/1.1, {args.connections} keep-alive connections, "
        f"{args.duration:g} s per phase, latency at half of each row's max rate"
    )
    report(rows, header)
    report_authenticated(rows, database_url)


if __name__ == "__main__":
    try:
        main()
    except TimeoutError as exc:
        sys.exit(f"bench/rest.py: {exc}")
