"""`POST /orders/{id}/pay` latency while Stripe is down: with the circuit breaker, and without.

Usage: `.venv/bin/python bench/payments.py [--requests N] [--timeout S]`; `pay_latency_rows()`
is the table's function (for a combined report such as `bench/webhooks.py`).

Two gunicorn servers (the Procfile's `web`, production mode, `WEB_CONCURRENCY=2`) share one
database; each has its own Redis database, so its own breaker: one with the default settings
(`PROVIDER_BREAKER_FAILURES` 5, cool-down 30 s), one whose breaker never opens (failures
1,000,000). `STRIPE_API_BASE` points at a loopback port that either refuses connections (the
provider is down) or accepts and never answers (it hangs; `STRIPE_TIMEOUT_SECONDS` 1). A
buyer pays one pending order `--requests` times in a row, one request at a time. Each row
starts from a closed breaker; with the breaker, the requests that open it (5) are shown apart
from the ones after. Every answer must be 503 `provider_unavailable`. Uses `DATABASE_URL` /
`REDIS_URL` when set (nothing dropped or flushed but the two Redis databases 14 and 15), else a
temporary SQLite file and the embedded Redis. Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import secrets
import socket
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

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
    prepare_database,
    print_table,
    procfile,
    production_env,
    scratch,
)

ADMIN = "bench-admin@example.test"
BUYER = "bench-buyer@example.test"
BREAKER_FAILURES = 5
REDIS_DBS = {"breaker": 14, "no breaker": 15}


def _redis_db(url: str, number: int) -> str:
    if url.startswith("unix://"):
        return f"{url.split('?', 1)[0]}?db={number}"
    return urlunsplit(urlsplit(url)._replace(path=f"/{number}"))


@contextlib.contextmanager
def _hanging(port: int) -> Iterator[None]:
    """Listen on `port` and never accept: connections open, requests never answered."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((HOST, port))
    listener.listen(1024)
    try:
        yield
    finally:
        listener.close()


def _flush(redis_url: str) -> None:
    from backend.redis_store import client_from_url

    client = client_from_url(redis_url)
    for key in client.scan_iter("breaker:*"):
        client.delete(key)
    client.close()


def _buyer_and_order(base: str, password: str) -> tuple[dict[str, str], int]:
    """Sign in the admin (a product) and a buyer (a pending order of it)."""
    with httpx.Client(base_url=f"{base}/api/v1", timeout=30, trust_env=False) as http:
        login = {"email": ADMIN, "password": password}
        admin = {"Authorization": "Bearer " + expect(http.post("/auth/login", json=login), 200)
                 .json()["access_token"]}  # fmt: skip
        product = {"sku": f"PAY-{secrets.token_hex(4)}", "name": "Lamp", "price": "12.50",
                   "stock": 100}  # fmt: skip
        pid = expect(http.post("/products", json=product, headers=admin), 201).json()["id"]
        buyer = {"email": BUYER, "password": password}
        if http.post("/auth/register", json=buyer).status_code not in (201, 409):
            raise RuntimeError("cannot register the buyer")
        token = expect(http.post("/auth/login", json=buyer), 200).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        order = {"items": [{"product_id": pid, "quantity": 1}]}
        return headers, expect(http.post("/orders", json=order, headers=headers), 201).json()["id"]


def _pay_times(base: str, headers: dict[str, str], order_id: int, count: int) -> list[float]:
    """Pay `count` times; return each latency (s). Every answer must be 503."""
    times = []
    with httpx.Client(timeout=60, trust_env=False) as http:
        for _ in range(count):
            started = time.perf_counter()
            response = http.post(f"{base}/api/v1/orders/{order_id}/pay", headers=headers)
            times.append(time.perf_counter() - started)
            expect(response, 503)
            if response.json().get("error") != "provider_unavailable":
                raise RuntimeError(response.text)
    return times


def _row(label: str, times: list[float]) -> list[str]:
    ms = sorted(t * 1000 for t in times)
    p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
    return [label, str(len(ms)), f"{statistics.median(ms):.1f}", f"{p95:.1f}", f"{ms[-1]:.1f}"]


def _measure(
    servers: dict[str, str],
    redis: dict[str, str],
    buyer: tuple[dict[str, str], int],
    n: int,
    stripe_port: int,
) -> list[list[str]]:
    headers, order_id = buyer
    rows = []
    for down in ("refusing", "hanging"):
        with _hanging(stripe_port) if down == "hanging" else contextlib.nullcontext():
            for name, base in servers.items():
                _flush(redis[name])
                times = _pay_times(base, headers, order_id, n + (BREAKER_FAILURES if name ==
                                   "breaker" else 0))  # fmt: skip
                if name == "breaker":
                    rows.append(_row(f"{down}: breaker opening ({BREAKER_FAILURES} failures)",
                                     times[:BREAKER_FAILURES]))  # fmt: skip
                    rows.append(_row(f"{down}: breaker open", times[BREAKER_FAILURES:]))
                else:
                    rows.append(_row(f"{down}: no breaker", times))
    return rows


def pay_latency_rows(requests: int = 20, timeout: float = 600) -> list[list[str]]:
    """Run the servers, measure, and return the table (header row first); prints nothing."""
    deadline = Deadline(timeout)
    stripe_port = free_port()  # nothing listens there: connections are refused
    with (
        scratch("bench-payments-") as (tmp, database_url),
        embedded_redis_if_needed() as (redis_url, _kind),
    ):
        redis = {name: _redis_db(redis_url, number) for name, number in REDIS_DBS.items()}
        base_env = production_env(database_url, redis["breaker"], tmp / "prometheus")
        base_env.update({
            "STRIPE_SECRET_KEY": "sk_test_bench", "STRIPE_WEBHOOK_SECRET": "whsec_bench",
            "STRIPE_API_BASE": f"http://{HOST}:{stripe_port}", "STRIPE_TIMEOUT_SECONDS": "1",
            "OUTSIDE_CONNECT_TIMEOUT_SECONDS": "1",
        })  # fmt: skip
        password = secrets.token_urlsafe(15)
        prepare_database(base_env, ADMIN, password, deadline)
        envs = {
            "breaker": {**base_env, "PORT": str(free_port()),
                        "PROVIDER_BREAKER_FAILURES": str(BREAKER_FAILURES)},
            "no breaker": {**base_env, "PORT": str(free_port()), "REDIS_URL": redis["no breaker"],
                           "PROVIDER_BREAKER_FAILURES": "1000000"},
        }  # fmt: skip
        with (
            gunicorn(procfile()["web"], envs["breaker"], tmp / "breaker.log", deadline) as one,
            gunicorn(procfile()["web"], envs["no breaker"], tmp / "plain.log", deadline) as two,
        ):
            buyer = _buyer_and_order(one.base, password)
            servers = {"breaker": one.base, "no breaker": two.base}
            rows = _measure(servers, redis, buyer, requests, stripe_port)
    return [["POST /orders/{id}/pay, Stripe down", "requests", "p50 ms", "p95 ms", "max ms"], *rows]


def main() -> None:
    """Parse options, measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20, help="timed requests per row")
    parser.add_argument("--timeout", type=float, default=600, help="overall limit in seconds")
    args = parser.parse_args()
    table = pay_latency_rows(args.requests, args.timeout)
    db_kind = "PostgreSQL" if os.environ.get("DATABASE_URL") else "SQLite (temporary file)"
    print(
        f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}; {db_kind}; "
        "gunicorn gevent workers=2, ENV=production; one request at a time; "
        "Stripe timeout 1 s (connect and read)"
    )
    print_table(table)


if __name__ == "__main__":
    try:
        main()
    except TimeoutError as exc:
        sys.exit(f"bench/payments.py: {exc}")
