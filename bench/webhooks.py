"""Webhook benchmark: deliveries/s on one worker, and commit → receipt latency, with baselines.

Usage: `.venv/bin/python bench/webhooks.py [--deliveries N] [--events N] [--rate R]
[--pay-requests N] [--timeout S]`.

The stack is the Procfile's: `web` (gunicorn, ENV=production) and one `worker` (the forking
`jobs.worker.Worker`); a verifying receiver (`tests.support.webhook_receiver`, threaded,
checks every signature with `standardwebhooks`) listens on 127.0.0.1 in this process, so
`WEBHOOKS_ALLOW_PRIVATE_NETWORKS=1`. A temporary SQLite file and the embedded Redis unless
`DATABASE_URL` / `REDIS_URL` are set (nothing is dropped or flushed). Only loopback.

Each row is one function of `ROWS` taking the running `Bench` and returning table lines;
a row for another feature (say, pay latency with the payment provider down, breaker open
or not) is one more such function appended to `ROWS`.

1. `throughput`: N deliveries recorded in one transaction for one endpoint, drained by the
   one worker (its dispatcher job sends `WEBHOOKS_CONCURRENCY` at a time over one connection
   pool): deliveries/s from the commit to the last receipt. Baseline: the same number of
   signed POSTs sent from this process over the same `Sender` with as many threads (what the
   receiver and the client allow without the database, the queue and the worker).
2. `latency`: E events at R/s through the API (`POST /webhooks/{id}/test`, which answers 202
   after its commit): p50/p99 from the answer's arrival to the receipt (a bound the commit
   precedes). Baseline: one signed POST from this process to the receiver, p50/p99.

Then, as a second table, `bench/payments.py`'s rows: `POST /orders/{id}/pay` latency with the
payment provider down (refusing, or hanging past the timeout), breaker open vs no breaker,
measured in the same run.
"""

from __future__ import annotations

import argparse
import logging
import secrets
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench")]

from bench.stack import (  # noqa: E402 - needs the sys.path fix above
    APP_CONFIG,
    Deadline,
    Processes,
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
from tests.support.webhook_receiver import Receiver  # noqa: E402

if TYPE_CHECKING:
    from flask import Flask

EMAIL = "bench-webhooks@example.test"
CONCURRENCY = 32
THROUGHPUT_TARGET = 200.0
P99_TARGET_MS = 1000.0


@dataclass
class Bench:
    """What every row gets: the stack, an admin's token, the receiver, the app, the limits."""

    base: str
    headers: dict[str, str]
    receiver: Receiver
    app: Flask
    args: argparse.Namespace
    deadline: Deadline


def percentile(values: list[float], fraction: float) -> float:
    """Return the `fraction` percentile of `values` (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def webhook(bench: Bench, events: list[str]) -> dict[str, object]:
    """Subscribe the receiver to `events` through the API; return the endpoint with its secret."""
    body = {"url": bench.receiver.url, "events": events}
    made: dict[str, object] = expect(
        httpx.post(f"{bench.base}/api/v1/webhooks", json=body, headers=bench.headers, timeout=30),
        201,
    ).json()
    bench.receiver.secret = str(made["secret"])
    return made


def wait_for(bench: Bench, count: int) -> None:
    """Wait until the receiver holds `count` requests (or raise past the deadline)."""
    got = bench.receiver.wait_for(count, timeout=min(120.0, bench.deadline.remaining()))
    if len(got) < count:
        raise RuntimeError(f"only {len(got)} of {count} deliveries arrived")


def throughput(bench: Bench) -> list[list[str]]:
    """Row 1: deliveries/s on one worker, beside a bare client's signed POSTs/s."""
    from backend.db import db
    from backend.services import webhooks
    from backend.webhook_sender import Message, Sender

    made = webhook(bench, ["order.created"])
    count = bench.args.deliveries
    bench.receiver.received.clear()
    with bench.app.app_context(), db.atomic():
        for n in range(count):
            webhooks.record_event(event_type="order.created", data={"n": n})
    committed = time.time()
    wait_for(bench, count)
    received = bench.receiver.received
    rate = count / (max(r.at for r in received) - committed)
    verified = all(r.verified for r in received)
    bench.receiver.received.clear()
    sender = Sender(timeout=10, allow_private=True, connections=CONCURRENCY)
    message = Message(bench.receiver.url, "msg_bench", '{"type":"order.created"}',
                      (str(made["secret"]),))  # fmt: skip
    started = time.time()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(lambda _: sender.send(message), range(count)))
    bare = count / (time.time() - started)
    sender.close()
    check = "OK" if rate >= THROUGHPUT_TARGET and verified else "MISSED"
    what = f"deliveries/s, one worker ({count}, {CONCURRENCY} threads)"
    return [[what, f"{rate:,.0f}", f"{bare:,.0f} (bare client)", f"{rate / bare:.2f}x",
             f">= 200/s: {check}"]]  # fmt: skip


def latency(bench: Bench) -> list[list[str]]:
    """Row 2: commit → receipt p50/p99 at a steady rate, beside one bare signed POST."""
    from backend.webhook_sender import Message, Sender

    made = webhook(bench, ["order.created"])
    bench.receiver.received.clear()
    answered: dict[str, float] = {}
    interval = 1 / bench.args.rate
    with httpx.Client(timeout=30) as client:
        for n in range(bench.args.events):
            due = time.monotonic() + interval
            response = client.post(
                f"{bench.base}/api/v1/webhooks/{made['id']}/test", headers=bench.headers
            )
            answered[expect(response, 202).json()["webhook_id"]] = time.time()
            if n + 1 < bench.args.events:
                bench.deadline.sleep(max(0.0, due - time.monotonic()))
    wait_for(bench, bench.args.events)
    lags = [(r.at - answered[r.webhook_id]) * 1000 for r in bench.receiver.received]
    sender = Sender(timeout=10, allow_private=True, connections=1)
    message = Message(bench.receiver.url, "msg_bare", "{}", (str(made["secret"]),))
    bare = []
    for _ in range(bench.args.events):
        started = time.perf_counter()
        sender.send(message)
        bare.append((time.perf_counter() - started) * 1000)
    sender.close()
    p50, p99 = statistics.median(lags), percentile(lags, 0.99)
    check = "OK" if p99 <= P99_TARGET_MS else "MISSED"
    return [[f"commit → receipt ms, p50 / p99 ({bench.args.events} at {bench.args.rate:g}/s)",
             f"{p50:.1f} / {p99:.1f}",
             f"{statistics.median(bare):.1f} / {percentile(bare, 0.99):.1f} (one bare POST)",
             "", f"p99 <= 1000 ms: {check}"]]  # fmt: skip


# One function per row; append rows here (e.g. pay latency with the provider down).
ROWS: list[Callable[[Bench], list[list[str]]]] = [throughput, latency]


def parse_args() -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--deliveries", type=int, default=2000, help="deliveries for row 1")
    parser.add_argument("--events", type=int, default=200, help="events for row 2")
    parser.add_argument("--rate", type=float, default=20.0, help="events per second in row 2")
    parser.add_argument("--pay-requests", type=int, default=20,
                        help="timed POST /orders/{id}/pay per row of the provider-down table "
                             "(bench/payments.py); 0 skips it")  # fmt: skip
    parser.add_argument("--timeout", type=float, default=600.0, help="overall limit, seconds")
    return parser.parse_args()


def main() -> int:
    """Start the stack and the receiver, run every row, print the table."""
    from backend import create_app

    args = parse_args()
    deadline = Deadline(args.timeout)
    password = secrets.token_urlsafe(15)
    table = [["row", "result", "baseline (same run)", "ratio", "target"]]
    with scratch("bench-webhooks-") as (tmp, database_url), embedded_redis_if_needed() as (
        redis_url, redis_kind,
    ):  # fmt: skip
        env = {**production_env(database_url, redis_url, tmp / "prometheus"),
               "WEBHOOKS_ALLOW_PRIVATE_NETWORKS": "1",
               "WEBHOOKS_CONCURRENCY": str(CONCURRENCY), "PORT": str(free_port())}  # fmt: skip
        prepare_database(env, EMAIL, password, deadline)
        procs = Processes(deadline, tmp / "logs")
        receiver = Receiver().start()
        try:
            procs.start_procfile("worker", "worker", env)
            with gunicorn(procfile()["web"], env, tmp / "logs" / "web.log", deadline) as web:
                credentials = {"email": EMAIL, "password": password}
                token = expect(httpx.post(f"{web.base}/api/v1/auth/login", json=credentials,
                                          timeout=30), 200).json()["access_token"]  # fmt: skip
                app = create_app({name: env[name] for name in APP_CONFIG}
                                 | {"WEBHOOKS_ALLOW_PRIVATE_NETWORKS": True})  # fmt: skip
                logging.getLogger("httpx").setLevel(logging.WARNING)
                bench = Bench(web.base, {"Authorization": f"Bearer {token}"}, receiver, app,
                              args, deadline)  # fmt: skip
                for row in ROWS:
                    table += row(bench)
        finally:
            receiver.stop()
            procs.stop_all()
    print(f"\nwebhooks benchmark: {redis_kind}, "
          f"{'SQLite (temporary file)' if database_url.startswith('sqlite') else 'DATABASE_URL'}, "
          f"one Procfile worker\n")  # fmt: skip
    print_table(table)
    if args.pay_requests:
        from bench.payments import pay_latency_rows

        print("\npayments with the provider down (bench/payments.py), breaker open vs none:\n")
        print_table(pay_latency_rows(args.pay_requests, deadline.remaining()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
