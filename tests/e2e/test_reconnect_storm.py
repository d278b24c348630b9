"""A reconnect storm: 300 event streams resume at once after the workers restart.

The Procfile's `web` line runs in production mode with two gevent workers.
Ten users each hold thirty `GET /api/v1/events?topics=products` streams (their
own `user:{id}` channel and the shared `products` one) on a small asyncio
client of raw sockets. While an admin changes a product's stock and the users
place orders that the admin confirms (`product.updated` on `products`;
`order.created`, `order.status_changed` and `notification.created` on
`user:{id}`), the workers restart twice: a graceful reload (SIGHUP to the
master: new workers, the old ones end their streams and exit), then one worker
is stopped (SIGTERM; the master starts another). Every client reconnects the
moment its stream ends, with no backoff and no jitter (the worst case), sending
its `Last-Event-ID`; after a refused attempt (a 503, a cut connection) it tries
again 0.1 s later.

In the end each client must have every event of its channels published since
the streams opened, exactly once and in order, with no `stream.reset`: the
ground truth is the channels' history in Redis (the `events:<channel>` streams).
A 503 with `Retry-After` while the workers restart would be acceptable only if
the client retries and still ends up with every event; any other status, and any
loss, duplicate or reordering, fails the test.

The leaving workers must also be gone within 10 s of their SIGTERM (the README:
restarts never hang): a stream that reconnects to a worker in the second between
its SIGTERM handler ending every stream and gunicorn closing its listener is
refused (503 `draining`, Retry-After) instead of holding the worker until
gunicorn's `graceful_timeout` (20 s); the client retries and lands elsewhere.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import httpx
import pytest
import redis
from flask import Flask

from backend.events import parse_id
from backend.models import User
from backend.services import passwords
from tests.support import processes as procs
from tests.support.accounts import ADMIN_EMAIL, PASSWORD
from tests.support.sse import frames

pytestmark = pytest.mark.slow

USERS = 10
STREAMS_PER_USER = 30
PRODUCTS = "products"
RETRY_PAUSE = 0.1  # after a refused attempt only (a 503, a reset); a clean end reconnects at once
CONNECT_BATCH = 50
SETTLE_TIMEOUT = 20.0
EXIT_BOUND = 10.0  # a leaving worker must be gone by then (gunicorn's graceful_timeout is 20 s)
PHASES = ("sighup", "sigterm")
PUBLISH_BETWEEN = 2.0  # seconds of publishing before, between and after the restarts


def parse_cursor(raw: str) -> dict[str, str]:
    """The SSE id as `{channel: stream id}` (the server's `channel=id,...` cursor)."""
    return dict(part.rsplit("=", 1) for part in raw.split(","))


@dataclass
class StormClient:
    """One event stream that resumes from its last id whenever it ends."""

    port: int
    token: str
    cursor: dict[str, str]  # where the stream starts: the newest event of each channel
    received: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)
    statuses: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    anomalies: list[str] = field(default_factory=list)
    last_event_id: str | None = None
    live: bool = False  # the current connection has sent its `retry:`
    opened: int = 0  # connections that reached `retry:`

    async def run(self) -> None:
        """Connect, read, and reconnect at once, until cancelled."""
        while True:
            try:
                if not await self._connect_once():
                    await asyncio.sleep(RETRY_PAUSE)
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                self.errors.append(repr(exc))
                await asyncio.sleep(RETRY_PAUSE)
            finally:
                self.live = False

    async def _connect_once(self) -> bool:
        """One connection; False when it was refused (not a 200)."""
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            resume = f"Last-Event-ID: {self.last_event_id}\r\n" if self.last_event_id else ""
            writer.write(
                f"GET /api/v1/events?topics={PRODUCTS} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {self.token}\r\nAccept: text/event-stream\r\n"
                f"{resume}\r\n".encode()
            )
            status = int((await reader.readline()).split()[1])
            headers = await read_headers(reader)
            self.statuses.append(status)
            if status != 200:
                return False
            assert headers.get("transfer-encoding") == "chunked", headers
            await self._read_body(reader)
            return True
        finally:
            writer.close()

    async def _read_body(self, reader: asyncio.StreamReader) -> None:
        buffer = ""
        while True:
            line = await reader.readline()
            if not line:
                raise ConnectionResetError("the stream was cut, not ended")
            size = int(line.split(b";")[0], 16)
            if size == 0:
                return  # the server ended the stream (shutdown): reconnect
            buffer += (await reader.readexactly(size + 2))[:-2].decode()
            while "\n\n" in buffer:
                block, buffer = buffer.split("\n\n", 1)
                for frame in frames([block + "\n\n"]):
                    if frame.retry is not None:
                        self.live = True
                        self.opened += 1
                    elif frame.event is not None and frame.id is not None:
                        self._record(frame.id, frame.event, frame.data or "")

    def _record(self, raw_id: str, event_type: str, data: str) -> None:
        cursor = parse_cursor(raw_id)
        changed = [c for c in cursor if cursor[c] != self.cursor.get(c)]
        if event_type == "stream.reset" or len(changed) != 1 or cursor.keys() != self.cursor.keys():
            self.anomalies.append(f"{event_type} {raw_id} after {self.last_event_id}: {data}")
        for channel in changed:
            self.received.setdefault(channel, []).append((cursor[channel], event_type, data))
        self.cursor, self.last_event_id = cursor, raw_id


async def read_headers(reader: asyncio.StreamReader) -> dict[str, str]:
    headers = {}
    while (line := (await reader.readline()).decode().strip()) != "":
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return headers


@dataclass
class Publisher:
    """Events through the API: stock changes (`products`) and orders (`user:{id}`)."""

    http: httpx.AsyncClient
    admin: dict[str, str]
    users: list[dict[str, str]]
    restocked: int  # the product whose stock the admin changes
    ordered: int  # the product the users order
    failures: list[str] = field(default_factory=list)
    requests: int = 0

    async def _call(self, method: str, path: str, **kwargs: object) -> httpx.Response | None:
        self.requests += 1
        try:
            response = await self.http.request(method, path, **kwargs)  # type: ignore[arg-type]
        except httpx.HTTPError as exc:
            self.failures.append(f"{method} {path}: {exc!r}")
            return None
        if response.status_code >= 300:
            self.failures.append(f"{method} {path}: {response.status_code} {response.text[:200]}")
        return response

    async def restock(self, stop: asyncio.Event) -> None:
        etag = (await self.http.get(f"/api/v1/products/{self.restocked}")).headers["ETag"]
        stock = 1000
        while not stop.is_set():
            stock += 1
            response = await self._call(
                "PATCH", f"/api/v1/products/{self.restocked}", json={"stock": stock},
                headers={**self.admin, "If-Match": etag},
            )  # fmt: skip
            if response is not None and response.status_code == 200:
                etag = response.headers["ETag"]
            else:
                etag = (await self.http.get(f"/api/v1/products/{self.restocked}")).headers["ETag"]
            await asyncio.sleep(0.2)

    async def place_orders(self, stop: asyncio.Event) -> None:
        turn = 0
        while not stop.is_set():
            buyer = self.users[turn % len(self.users)]
            turn += 1
            order = await self._call(
                "POST", "/api/v1/orders", headers=buyer,
                json={"items": [{"product_id": self.ordered, "quantity": 1}]},
            )  # fmt: skip
            if order is not None and order.status_code == 201:
                await self._call(
                    "POST", f"/api/v1/orders/{order.json()['id']}/status",
                    json={"status": "confirmed"}, headers=self.admin,
                )  # fmt: skip
            await asyncio.sleep(0.25)


def worker_pids(master: int) -> set[int]:
    return set(procs.descendants(master))


async def until(condition: Callable[[], bool], what: str, timeout: float = SETTLE_TIMEOUT) -> float:
    """Wait for `condition`; return how long it took."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
    return round(time.monotonic() - started, 2)


def all_live(clients: list[StormClient]) -> Callable[[], bool]:
    return lambda: all(client.live for client in clients)


async def exit_time(master: int, leaving: set[int]) -> float | None:
    """Seconds until the workers in `leaving` are gone; None if they outlive `EXIT_BOUND`."""
    started = time.monotonic()
    while leaving & worker_pids(master):
        if time.monotonic() - started > EXIT_BOUND:
            return None
        await asyncio.sleep(0.05)
    return round(time.monotonic() - started, 2)


@dataclass
class Restart:
    """One restart of the workers and the reconnect storm it causes."""

    leaving: set[int]
    storm_seconds: float
    reconnects: int
    exited: asyncio.Task[float | None]


async def restart(
    master: int, clients: list[StormClient], action: Callable[[], set[int]]
) -> Restart:
    """Run `action` (it signals and returns the pids that must go); wait out the storm."""
    opened = sum(client.opened for client in clients)
    started = time.monotonic()
    leaving = action()
    exited = asyncio.create_task(exit_time(master, leaving))
    await until(lambda: sum(c.opened for c in clients) > opened, "a first reconnect")
    await asyncio.sleep(0.5)  # every stream of the leaving workers has ended by now
    await until(all_live(clients), "every client to stream again")
    reconnects = sum(client.opened for client in clients) - opened
    return Restart(leaving, round(time.monotonic() - started, 2), reconnects, exited)


def graceful_reload(master: int) -> Callable[[], set[int]]:
    def action() -> set[int]:
        leaving = worker_pids(master)
        os.kill(master, signal.SIGHUP)
        return leaving

    return action


def stop_one_worker(master: int, spare: set[int]) -> Callable[[], set[int]]:
    def action() -> set[int]:
        victim = min(worker_pids(master) - spare)
        os.kill(victim, signal.SIGTERM)
        return {victim}

    return action


async def storm(
    base: str, port: int, master: int, server: redis.Redis, tokens: dict[int, str], admin: str
) -> tuple[list[StormClient], dict[str, list[tuple[str, str, str]]], dict[str, Any]]:
    """Open the streams, publish, restart twice, drain; return the clients and the truth."""
    async with httpx.AsyncClient(base_url=base, timeout=15) as http:
        created = [
            await http.post(
                "/api/v1/products",
                headers={"Authorization": f"Bearer {admin}"},
                json={"sku": f"STORM-{n}", "name": "Storm", "price": "1.00", "stock": 1_000_000},
            )
            for n in range(2)
        ]
        assert [r.status_code for r in created] == [201, 201]
        channels = [PRODUCTS, *(f"user:{uid}" for uid in tokens)]
        start = dict(zip(channels, latest(server, channels), strict=True))
        clients = [
            StormClient(
                port, token, {PRODUCTS: start[PRODUCTS], f"user:{uid}": start[f"user:{uid}"]}
            )
            for uid, token in tokens.items()
            for _ in range(STREAMS_PER_USER)
        ]
        tasks = []
        for first in range(0, len(clients), CONNECT_BATCH):
            batch = clients[first : first + CONNECT_BATCH]
            tasks += [asyncio.create_task(client.run()) for client in batch]
            await until(all_live(batch), "a batch of streams to open")
        publisher = Publisher(
            http, {"Authorization": f"Bearer {admin}"},
            [{"Authorization": f"Bearer {t}"} for t in tokens.values()],
            created[0].json()["id"], created[1].json()["id"],
        )  # fmt: skip
        stop = asyncio.Event()
        publishing = [
            asyncio.create_task(publisher.restock(stop)),
            asyncio.create_task(publisher.place_orders(stop)),
        ]
        await asyncio.sleep(PUBLISH_BETWEEN)
        # Each client has an id to resume from (one that saw nothing would start afresh).
        await until(lambda: all(client.last_event_id for client in clients), "a first event each")
        reload = await restart(master, clients, graceful_reload(master))
        await asyncio.sleep(PUBLISH_BETWEEN)
        stopped = await restart(master, clients, stop_one_worker(master, reload.leaving))
        await asyncio.sleep(PUBLISH_BETWEEN)
        stop.set()
        await asyncio.gather(*publishing)
        final = dict(zip(channels, latest(server, channels), strict=True))
        drain = await until(
            lambda: all(all(c.cursor[k] == final[k] for k in c.cursor) for c in clients),
            "every client to catch up",
        )
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        report: dict[str, Any] = {
            phase: {
                "storm_s": done.storm_seconds,
                "reconnects": done.reconnects,
                "leaving": sorted(done.leaving),
                "exit_s": await done.exited,
            }
            for phase, done in zip(PHASES, (reload, stopped), strict=True)
        }
        report |= {
            "drain_s": drain, "publish_requests": publisher.requests,
            "publish_failures": publisher.failures,
        }  # fmt: skip
    truth = {channel: history(server, channel, start[channel]) for channel in channels}
    return clients, truth, report


Entries = list[tuple[bytes, dict[bytes, bytes]]]


def latest(server: redis.Redis, channels: list[str]) -> list[str]:
    newest = [cast(Entries, server.xrevrange(f"events:{c}", count=1)) for c in channels]
    return [entries[0][0].decode() if entries else "0-0" for entries in newest]


def history(server: redis.Redis, channel: str, after: str) -> list[tuple[str, str, str]]:
    """Every event of `channel` after `after`, from its Redis stream: the ground truth."""
    entries = cast(
        Entries, server.xrange(f"events:{channel}", min=f"({after}" if after != "0-0" else "-")
    )
    return [(i.decode(), f[b"type"].decode(), f[b"data"].decode()) for i, f in entries]


def test_a_reconnect_storm_after_worker_restarts_loses_and_repeats_nothing(
    app: Flask, database_url: str, redis_url: str, processes: Callable[..., procs.Process]
) -> None:
    began = time.monotonic()
    port = procs.free_port()
    env = procs.procfile_environment(database_url, redis_url, port)
    web = processes(["bash", "-c", f"exec {procs.procfile()['web']}"], env)
    emails = [f"storm{n}@example.test" for n in range(USERS)]
    shared_hash = passwords.hash_password(PASSWORD)  # one argon2 hash for all (they are slow)
    for email in [ADMIN_EMAIL, *emails]:
        role = "admin" if email == ADMIN_EMAIL else "user"
        User.create(email=email, password_hash=shared_hash, role=role, full_name=email)
    base = f"http://127.0.0.1:{port}"
    procs.wait_until_up(f"{base}/healthz")
    signed_in = asyncio.run(sign_in(base, [ADMIN_EMAIL, *emails]))
    admin = signed_in.pop(ADMIN_EMAIL)[1]
    tokens = dict(signed_in.values())
    server = redis.Redis.from_url(redis_url)
    setup = time.monotonic() - began

    clients, truth, report = asyncio.run(storm(base, port, web.popen.pid, server, tokens, admin))

    elapsed = time.monotonic() - began
    statuses = sorted({status for client in clients for status in client.statuses})
    errors = [error for client in clients for error in client.errors]
    print(
        f"\nstorm: {len(clients)} clients, {sum(map(len, truth.values()))} events "
        f"({len(truth[PRODUCTS])} on products), statuses {statuses}, {len(errors)} "
        f"connections cut, {report}, {elapsed:.1f} s ({setup:.1f} s to set up)"
    )
    problems = []
    for n, client in enumerate(clients):
        for channel in client.cursor:
            got = client.received.get(channel, [])
            if got != truth[channel]:
                problems.append(describe(n, channel, got, truth[channel]))
        problems += [f"client {n}: {anomaly}" for anomaly in client.anomalies]
    assert problems == [], "\n".join(problems[:20])
    assert set(statuses) <= {200, 503}, statuses
    assert report["publish_failures"] == [], report
    assert report["sighup"]["reconnects"] >= len(clients), report
    assert report["sigterm"]["reconnects"] > 0, report
    assert len(truth[PRODUCTS]) > 20, truth[PRODUCTS]
    assert all(truth.values()), {channel: len(events) for channel, events in truth.items()}
    assert elapsed < 60
    hung = {phase: report[phase]["leaving"] for phase in PHASES if report[phase]["exit_s"] is None}
    assert not hung, f"workers {hung} outlived their SIGTERM by more than {EXIT_BOUND} s"


def describe(
    n: int, channel: str, got: list[tuple[str, str, str]], want: list[tuple[str, str, str]]
) -> str:
    got_ids, want_ids = [g[0] for g in got], [w[0] for w in want]
    missing = [i for i in want_ids if i not in got_ids]
    duplicated = sorted({i for i in got_ids if got_ids.count(i) > 1})
    extra = [i for i in got_ids if i not in want_ids]
    return (
        f"client {n} {channel}: {len(got)} events for {len(want)}; missing {missing[:5]}, "
        f"duplicated {duplicated[:5]}, unknown {extra[:5]}, "
        f"in order {got_ids == sorted(got_ids, key=parse_id)}"
    )


async def sign_in(base: str, emails: list[str]) -> dict[str, tuple[int, str]]:
    """Sign everyone in at once: `{email: (user id, access token)}`."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        responses = await asyncio.gather(
            *(
                http.post("/api/v1/auth/login", json={"email": e, "password": PASSWORD})
                for e in emails
            )
        )
    assert [r.status_code for r in responses] == [200] * len(emails), [r.text for r in responses]
    return {
        email: (r.json()["user"]["id"], r.json()["access_token"])
        for email, r in zip(emails, responses, strict=True)
    }
