"""Orders under concurrency, over HTTP against the Procfile's gunicorn with several workers.

Users and products are created straight in the test database; gunicorn (4 gevent
workers, production mode) then takes concurrent orders. Stock must never be
oversold, one `Idempotency-Key` must create one order however many times it is
sent at once, and an order short of one product must take nothing at all.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask

from backend.models import IdempotencyRecord, Order, OrderLine, Product
from tests.support import processes as procs
from tests.support.accounts import PASSWORD, make_user
from tests.support.catalog import make_product

pytestmark = pytest.mark.slow

USERS = 10
ORDERS_PER_USER = 20
THREADS = 50
STOCK = 50
DEADLINE_SECONDS = 120.0  # for each burst of concurrent requests
HTTP_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
GENEROUS = "100000/minute"
LOUD = ("error", "critical")


@dataclass
class Shop:
    """A running gunicorn, signed-in buyers and the products the tests order."""

    base: str
    web: procs.Process
    tokens: list[str]
    user_ids: list[int]
    products: dict[str, int]

    def headers(self, buyer: int, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[buyer]}", **extra}

    def log(self, tail: int = 8000) -> str:
        return "".join(self.web.output)[-tail:]

    def server_errors(self) -> list[str]:
        """Lines of the server log that show a 5xx, a traceback or a locked database."""
        bad = []
        for line in self.web.output:
            if "Traceback" in line or "database is locked" in line or "[ERROR]" in line:
                bad.append(line)
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if not isinstance(record, dict):
                continue
            if int(record.get("status") or 0) >= 500 or record.get("level") in LOUD:
                bad.append(line)
        return bad


def burst(calls: list[Callable[[httpx.Client], httpx.Response]]) -> list[httpx.Response]:
    """Run `calls` at once from a pool of threads, each thread with its own keep-alive client.

    Every thread waits at a barrier so the requests really overlap; the whole
    burst is bounded by `DEADLINE_SECONDS`.
    """
    threads = min(THREADS, len(calls))
    barrier = threading.Barrier(threads)
    deadline = time.monotonic() + DEADLINE_SECONDS

    def worker(share: list[tuple[int, Callable[[httpx.Client], httpx.Response]]]) -> list[Any]:
        with httpx.Client(timeout=HTTP_TIMEOUT, trust_env=False) as http:
            barrier.wait(timeout=DEADLINE_SECONDS)
            done = []
            for index, call in share:
                assert time.monotonic() < deadline, "the burst ran past its deadline"
                done.append((index, call(http)))
            return done

    shares: list[list[tuple[int, Callable[[httpx.Client], httpx.Response]]]] = [
        [] for _ in range(threads)
    ]
    for index, call in enumerate(calls):
        shares[index % threads].append((index, call))
    with ThreadPoolExecutor(threads) as pool:
        jobs = [pool.submit(worker, share) for share in shares]
        results = [pair for job in jobs for pair in job.result(timeout=DEADLINE_SECONDS + 10)]
    return [response for _, response in sorted(results, key=lambda pair: pair[0])]


def post_order(
    shop: Shop, buyer: int, items: list[dict[str, int]], **headers: str
) -> Callable[[httpx.Client], httpx.Response]:
    def call(http: httpx.Client) -> httpx.Response:
        return http.post(
            f"{shop.base}/orders", json={"items": items}, headers=shop.headers(buyer, **headers)
        )

    return call


def stock_over_http(shop: Shop, product_id: int) -> int:
    response = httpx.get(f"{shop.base}/products/{product_id}", timeout=HTTP_TIMEOUT)
    assert response.status_code == 200, response.text
    return int(response.json()["stock"])


@pytest.fixture
def shop(
    app: Flask,
    database_url: str,
    redis_url: str,
    tmp_path: Path,
    processes: Callable[..., procs.Process],
) -> Iterator[Shop]:
    emails = [f"buyer{i}@example.test" for i in range(USERS)]
    user_ids = [make_user(address).id for address in emails]
    products = {
        "race": make_product("RACE-1", stock=STOCK).id,
        "idem": make_product("IDEM-1", stock=STOCK).id,
        "plenty": make_product("PAIR-PLENTY", stock=5).id,
        "scarce": make_product("PAIR-SCARCE", stock=1).id,
        "pair_a": make_product("PAIR-A", stock=STOCK).id,
        "pair_b": make_product("PAIR-B", stock=10).id,
    }
    # Peewee runs outside transactions in autocommit mode: everything above is committed.
    port = procs.free_port()
    env = {
        **procs.procfile_environment(database_url, redis_url, port),
        "WEB_CONCURRENCY": "4",
        "RATELIMIT_WRITES": GENEROUS,
        "RATELIMIT_LOGIN_PER_IP": GENEROUS,
        "RATELIMIT_LOGIN_PER_EMAIL": GENEROUS,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),  # leave var/ alone
    }
    web = processes(["bash", "-c", f"exec {procs.procfile()['web']}"], env)
    procs.wait_until_up(f"http://127.0.0.1:{port}/healthz")
    base = f"http://127.0.0.1:{port}/api/v1"

    def sign_in(address: str) -> str:
        with httpx.Client(timeout=HTTP_TIMEOUT, trust_env=False) as http:
            response = http.post(
                f"{base}/auth/login", json={"email": address, "password": PASSWORD}
            )
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    with ThreadPoolExecutor(USERS) as pool:
        tokens = list(pool.map(sign_in, emails, timeout=DEADLINE_SECONDS))
    running = Shop(base=base, web=web, tokens=tokens, user_ids=user_ids, products=products)
    yield running
    assert running.server_errors() == [], running.log()


def test_concurrent_orders_never_oversell(shop: Shop) -> None:
    product_id = shop.products["race"]
    item = [{"product_id": product_id, "quantity": 1}]
    calls = [post_order(shop, n % USERS, item) for n in range(USERS * ORDERS_PER_USER)]

    responses = burst(calls)

    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: STOCK, 409: USERS * ORDERS_PER_USER - STOCK}, (
        statuses,
        [r.text for r in responses if r.status_code not in (201, 409)][:5],
        shop.log(),
    )
    for response in responses:
        body = response.json()
        if response.status_code == 201:
            assert [(line["product_id"], line["quantity"]) for line in body["items"]] == [
                (product_id, 1)
            ]
            continue
        assert body["error"] == "insufficient_stock", body
        # A loser only loses when the conditional UPDATE matched no row: nothing was left.
        assert body["errors"]["items"] == [
            {"product_id": product_id, "requested": 1, "available": 0}
        ], body
    created = {n: r.json() for n, r in enumerate(responses) if r.status_code == 201}
    assert len({order["id"] for order in created.values()}) == STOCK
    assert all(order["user_id"] == shop.user_ids[n % USERS] for n, order in created.items())

    assert stock_over_http(shop, product_id) == 0
    assert Product.get_by_id(product_id).stock == 0
    assert Order.select().count() == STOCK
    lines = OrderLine.select().where(OrderLine.product == product_id)
    assert sum(line.quantity for line in lines) == STOCK


def test_one_idempotency_key_sent_at_once_makes_one_order(shop: Shop) -> None:
    product_id = shop.products["idem"]
    item = [{"product_id": product_id, "quantity": 3}]
    key = {"Idempotency-Key": "checkout-7f3a"}

    responses = burst([post_order(shop, 0, item, **key) for _ in range(20)])

    assert [r.status_code for r in responses] == [201] * 20, (
        [r.text for r in responses if r.status_code != 201][:5],
        shop.log(),
    )
    bodies = [r.json() for r in responses]
    assert all(body == bodies[0] for body in bodies), bodies
    replayed = [r for r in responses if r.headers.get("Idempotent-Replayed") == "true"]
    assert len(replayed) == 19
    assert Order.select().count() == 1
    order = Order.get()
    assert (order.id, order.idempotency_key) == (bodies[0]["id"], "checkout-7f3a")
    assert IdempotencyRecord.select().count() == 1
    assert Product.get_by_id(product_id).stock == STOCK - 3
    assert stock_over_http(shop, product_id) == STOCK - 3

    with httpx.Client(timeout=HTTP_TIMEOUT, trust_env=False) as http:
        retry = post_order(shop, 0, item, **key)(http)
        assert (retry.status_code, retry.json()) == (201, bodies[0])
        other = post_order(shop, 0, [{"product_id": product_id, "quantity": 4}], **key)(http)
    assert other.status_code == 422, other.text
    assert other.json()["error"] == "idempotency_key_reused"
    assert Order.select().count() == 1
    assert Product.get_by_id(product_id).stock == STOCK - 3


def test_an_order_short_of_one_product_takes_nothing(shop: Shop) -> None:
    plenty, scarce = shop.products["plenty"], shop.products["scarce"]
    items = [{"product_id": plenty, "quantity": 2}, {"product_id": scarce, "quantity": 3}]

    with httpx.Client(timeout=HTTP_TIMEOUT, trust_env=False) as http:
        short = post_order(shop, 0, items)(http)

    assert short.status_code == 409, short.text
    assert short.json()["error"] == "insufficient_stock"
    assert short.json()["errors"]["items"] == [
        {"product_id": scarce, "requested": 3, "available": 1}
    ]
    assert (stock_over_http(shop, plenty), stock_over_http(shop, scarce)) == (5, 1)
    assert Order.select().count() == 0


def test_concurrent_two_product_orders_are_all_or_nothing(shop: Shop) -> None:
    pair_a, pair_b = shop.products["pair_a"], shop.products["pair_b"]  # stock 50 and 10
    # Lines in both orders, so the stock rows are taken in opposite request orders.
    forwards = [{"product_id": pair_a, "quantity": 1}, {"product_id": pair_b, "quantity": 1}]
    backwards = list(reversed(forwards))
    calls = [post_order(shop, n % USERS, forwards if n % 2 else backwards) for n in range(40)]

    responses = burst(calls)

    statuses = Counter(r.status_code for r in responses)
    assert statuses == {201: 10, 409: 30}, (statuses, shop.log())
    for response in responses:
        if response.status_code == 409:
            assert response.json()["errors"]["items"] == [
                {"product_id": pair_b, "requested": 1, "available": 0}
            ]
    assert (stock_over_http(shop, pair_a), stock_over_http(shop, pair_b)) == (STOCK - 10, 0)
    assert (Product.get_by_id(pair_a).stock, Product.get_by_id(pair_b).stock) == (STOCK - 10, 0)
    assert Order.select().count() == 10
